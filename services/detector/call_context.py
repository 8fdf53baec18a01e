"""What the rules see of one finished call."""

import math
from dataclasses import dataclass, field
from typing import Literal

from callqual.detector.sdp_exchange import SdpHistory
from callqual.schemas import CallRecord, SipMessageEvent, StreamRecord


@dataclass(init=False, slots=True)
class CallContext:
    """A finished call: its record, its SIP messages (bounded, oldest kept) and its RTP streams.

    Rules get the messages so that every alert can cite the packets behind it.
    """

    record: CallRecord
    messages: list[SipMessageEvent] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    #: True when the message list hit its bound and later messages were not kept
    messages_truncated: bool = False
    #: Why the call was closed: its signalling ended it, a timer ran out (no BYE, no media),
    #: the input ended while it was still open, or the bounded call table evicted it.
    closed_by: Literal["signalling", "timeout", "end_of_input", "evicted"] = "signalling"
    #: Capture time of its last SIP message or media report, and of its closing
    last_activity_ts: float = 0.0
    closed_ts: float = 0.0
    #: When its timer ran out (whenever a scan found it): its category is judged as of then;
    #: infinite for a call still open at the end of the input (see ``suspicion.py``)
    due_ts: float = math.inf
    #: Every SDP each party sent and the offer/answer exchanges; empty when only the record is known
    sdp: SdpHistory = field(default_factory=SdpHistory)

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        record: CallRecord,
        messages: list[SipMessageEvent] | None = None,
        streams: list[StreamRecord] | None = None,
        messages_truncated: bool = False,
        closed_by: Literal["signalling", "timeout", "end_of_input", "evicted"] = "signalling",
        last_activity_ts: float = 0.0,
        closed_ts: float = 0.0,
        due_ts: float = math.inf,
        sdp: SdpHistory | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.record = record
        self.messages = [] if messages is None else messages
        self.streams = [] if streams is None else streams
        self.messages_truncated = messages_truncated
        self.closed_by = closed_by
        self.last_activity_ts = last_activity_ts
        self.closed_ts = closed_ts
        self.due_ts = due_ts
        self.sdp = SdpHistory() if sdp is None else sdp
