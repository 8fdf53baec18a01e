"""What the rules see of one finished call."""

from dataclasses import dataclass, field

from callqual.schemas import CallRecord, SipMessageEvent, StreamRecord


@dataclass(slots=True)
class CallContext:
    """A finished call: its record, its SIP messages (bounded, oldest kept) and its RTP streams.

    Rules get the messages so that every alert can cite the packets behind it.
    """

    record: CallRecord
    messages: list[SipMessageEvent] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    #: True when the message list hit its bound and later messages were not kept
    messages_truncated: bool = False
