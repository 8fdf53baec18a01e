"""Assembles per-call state from SIP events and stream records, and decides when a call is finished.

Time is capture time only (the events' ``ts``): replaying a capture gives the
same records whatever the wall clock says, and a Kafka detector that restarts
and replays reaches the same decisions.

The open-call table is bounded. When it is full the least recently active
call is finished early (its record is still published, marked by a counted
``calls.evicted``) rather than dropped: a flood of 100,000 Call-IDs costs
accuracy on the oldest calls, never memory or silence.
"""

import heapq
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic.main  # noqa: F401  (mypyc: a compiled module must import where BaseModel lives)
from pydantic import BaseModel, ConfigDict

from callqual.detector.call_context import CallContext
from callqual.detector.rules.failure_classes import RETRIED_BY_UA
from callqual.detector.sip_dialog import SipDialog
from callqual.schemas import CallRecord, SipMessageEvent, StreamRecord
from callqual.schemas.base import SCHEMA_VERSION
from callqual.schemas.prebuilt import every_field, prebuilt

ClosedBy = Literal["signalling", "timeout", "end_of_input", "evicted"]


class AssemblerConfig(BaseModel):
    """Timers of the call table; the defaults follow RFC 3261's timers where one applies."""

    model_config = ConfigDict(frozen=True)

    #: After BYE or a final failure, wait this long (capture time) for ACKs, 200-to-BYE and the
    #: collector's final stream reports, which come after its own stream grace period.
    linger_s: float = 6.0
    #: An INVITE with no final response: RFC 3261 Timer B is 64*T1 = 32 s; twice that is safe.
    invite_timeout_s: float = 64.0
    #: An INVITE that is ringing (180/183): Timer B no longer runs once a provisional response
    #: arrived, and people let a phone ring for minutes; a proxy's Timer C (RFC 3261 16.8) is
    #: "greater than 3 minutes", so a ringing call is only given up on after that.
    ringing_timeout_s: float = 200.0
    #: After a 401/407 (or 3xx) to an INVITE, the UA may retry with credentials (a new CSeq, same
    #: Call-ID): keep the call open this long so the retry joins it instead of starting a new call.
    retry_window_s: float = 32.0
    #: An answered call with no SIP and no media report for this long is considered gone.
    idle_timeout_s: float = 300.0
    max_calls: int = 50_000
    #: Messages kept per call as alert evidence (the first ones, where failures show).
    max_messages_per_call: int = 64


@dataclass(init=False, slots=True)
class _OpenCall:
    dialog: SipDialog
    messages: list[SipMessageEvent] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    messages_truncated: bool = False
    last_activity: float = 0.0
    #: position in the table's least-recently-active order (a later message, a larger number)
    recency: int = 0
    #: due time of the call's live entry in the timer heap (never later than its real due time)
    scheduled: float = math.inf

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        dialog: SipDialog,
        messages: list[SipMessageEvent] | None = None,
        streams: list[StreamRecord] | None = None,
        messages_truncated: bool = False,
        last_activity: float = 0.0,
        recency: int = 0,
        scheduled: float = math.inf,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.dialog = dialog
        self.messages = [] if messages is None else messages
        self.streams = [] if streams is None else streams
        self.messages_truncated = messages_truncated
        self.last_activity = last_activity
        self.recency = recency
        self.scheduled = scheduled


#: A timer heap entry: (due time, tie-break, Call-ID, the call it was pushed for)
_Due = tuple[float, int, str, _OpenCall]

#: Heap entries due this close after ``now`` are checked exactly: ``since + wait`` and
#: ``now - since >= wait`` may round differently, and a check too many costs one comparison.
_DUE_SLACK_S = 1e-3

#: Every field of a call record: built whole, one fields-set shared by all of them
CALL_RECORD_FIELDS = every_field(CallRecord)


class CallAssembler:
    def __init__(self, config: AssemblerConfig | None = None) -> None:
        self.config = config or AssemblerConfig()
        cfg = self.config
        #: The timers as plain floats: read per message, and a pydantic field read is a generic lookup
        self._linger_s = cfg.linger_s
        self._retry_wait_s = max(cfg.linger_s, cfg.retry_window_s)
        self._invite_timeout_s = cfg.invite_timeout_s
        self._ringing_timeout_s = cfg.ringing_timeout_s
        self._idle_timeout_s = cfg.idle_timeout_s
        self._max_messages = cfg.max_messages_per_call
        self._calls: OrderedDict[str, _OpenCall] = OrderedDict()
        self.counters: Counter[str] = Counter()
        #: Open calls by due time (issue 14: scanning every open call each capture second was
        #: ~8 % of the detector). Entries are lazy: one is live per call (``scheduled``), others stale.
        self._due: list[_Due] = []
        self._pushes = 0

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        """Whether ``call_id`` is an open call (a consumer holds its input until it is not)."""
        return call_id in self._calls

    def on_sip(self, ev: SipMessageEvent) -> list[CallContext]:
        """Apply one SIP message; returns calls evicted to make room (usually none)."""
        call_id = ev.call_id
        call = self._calls.get(call_id)
        evicted: list[CallContext] = []
        if call is None:
            if not (ev.is_request and ev.method == "INVITE"):
                # Only an INVITE starts a call; REGISTER/OPTIONS/... are counted, and the
                # security rules see them as events, but they are not calls.
                self.counters[f"sip.non_call.{ev.method or ev.cseq_method or 'response'}"] += 1
                return evicted
            if len(self._calls) >= self.config.max_calls:
                _, oldest = self._calls.popitem(last=False)
                self.counters["calls.evicted"] += 1
                evicted.append(self._context(oldest, "evicted", ev.ts, due=ev.ts))
            call = _OpenCall(dialog=SipDialog.start(ev), last_activity=ev.ts)
            self._calls[call_id] = call
        else:
            self._calls.move_to_end(call_id)
        self._pushes += 1
        call.recency = self._pushes
        call.dialog.apply(ev)
        call.last_activity = max(call.last_activity, ev.ts)
        if len(call.messages) < self._max_messages:
            call.messages.append(ev)
        else:
            call.messages_truncated = True
        # A message can bring the due time forward (a BYE, a final failure); activity alone only
        # pushes it back, which the live entry finds when it comes up.
        self._schedule(call_id, call, sum(self._timer(call)))
        return evicted

    def on_stream(self, record: StreamRecord) -> bool:
        """Attach a finished stream to its call; False when no open call owns it."""
        call = self._calls.get(record.call_id) if record.call_id else None
        if call is None:
            return False
        call.streams.append(record)
        call.last_activity = max(call.last_activity, record.last_ts)
        return True

    def touch(self, call_id: str | None, ts: float) -> None:
        """Media is still flowing for this call (an interval report): keep it open."""
        call = self._calls.get(call_id) if call_id else None
        if call is not None:
            call.last_activity = max(call.last_activity, ts)

    def dialog(self, call_id: str | None) -> SipDialog | None:
        """The open call's dialog as it stands (read-only use), None when no open call has this id."""
        call = self._calls.get(call_id) if call_id else None
        return None if call is None else call.dialog

    def snapshot(
        self, call_id: str, now: float, streams: list[StreamRecord] | None = None
    ) -> CallContext | None:
        """An open call judged as it stands at ``now``, with ``streams`` (its live ones) when given.

        The call stays open: the rules see what a finished call would show so far, for alerts
        that must not wait for the end (a final failure, mid-call quality).
        """
        call = self._calls.get(call_id)
        if call is None:
            return None
        view = (
            call
            if streams is None
            else _OpenCall(
                call.dialog,
                call.messages,
                [*call.streams, *streams],
                call.messages_truncated,
                call.last_activity,
            )
        )
        return self._context(view, "signalling", now)

    def expire(self, now: float) -> list[CallContext]:
        """Calls that are finished as of capture time ``now``, least recently active first."""
        heap = self._due
        due: dict[str, _OpenCall] = {}
        later: list[tuple[str, _OpenCall]] = []
        while heap and heap[0][0] <= now + _DUE_SLACK_S:
            entry_due, _, cid, call = heapq.heappop(heap)
            if entry_due != call.scheduled or self._calls.get(cid) is not call:
                continue  # stale: superseded by an earlier entry, or the call was finished or evicted
            call.scheduled = math.inf
            if self._is_finished(call, now):
                due[cid] = call
            else:
                later.append((cid, call))
        for cid, call in later:
            self._schedule(cid, call, sum(self._timer(call)))
        out = []
        for cid, call in sorted(due.items(), key=lambda item: item[1].recency):
            del self._calls[cid]
            by: ClosedBy = "signalling" if call.dialog.ended_ts is not None else "timeout"
            out.append(self._context(call, by, now, due=sum(self._timer(call))))
        if len(heap) > 2 * len(self._calls) + 1024:
            self._compact()
        return out

    def drain(self, now: float) -> list[CallContext]:
        """End of input at capture time ``now``: every open call is finished as it stands."""
        out = [
            self._context(call, "signalling" if call.dialog.ended_ts is not None else "end_of_input", now)
            for call in self._calls.values()
        ]
        self._calls.clear()
        self._due.clear()
        return out

    def _schedule(self, call_id: str, call: _OpenCall, due: float) -> None:
        """Make ``due`` the call's live heap entry, unless the live one is earlier already."""
        if due < call.scheduled:
            call.scheduled = due
            self._pushes += 1
            heapq.heappush(self._due, (due, self._pushes, call_id, call))

    def _compact(self) -> None:
        """Drop the stale entries: one live entry per open call, as it stands."""
        self._due = [(c.scheduled, c.recency, cid, c) for cid, c in self._calls.items()]
        heapq.heapify(self._due)

    def _is_finished(self, call: _OpenCall, now: float) -> bool:
        since, wait = self._timer(call)
        return now - since >= wait

    def _timer(self, call: _OpenCall) -> tuple[float, float]:
        """The call's running timer: (since when, how long); it is finished once that has passed."""
        d = call.dialog
        ended = d.ended_ts
        if ended is not None:
            retryable = d.answer_ts is None and d.final_status in RETRIED_BY_UA
            wait = self._retry_wait_s if retryable else self._linger_s
            return max(ended, call.last_activity), wait
        if d.answer_ts is None:
            timeout = self._invite_timeout_s if d.ringing_ts is None else self._ringing_timeout_s
            return call.last_activity, timeout
        return call.last_activity, self._idle_timeout_s

    @staticmethod
    def _context(call: _OpenCall, closed_by: "ClosedBy", now: float, due: float = math.inf) -> CallContext:
        d = call.dialog
        streams = sorted(call.streams, key=lambda s: (s.first_ts, s.src_ip, s.src_port))
        record = prebuilt(CallRecord, call_record_fields(d, streams, closed_by), CALL_RECORD_FIELDS)
        return CallContext(
            record=record,
            messages=call.messages,
            streams=streams,
            messages_truncated=call.messages_truncated,
            closed_by=closed_by,
            last_activity_ts=call.last_activity,
            closed_ts=max(now, call.last_activity),
            due_ts=due,
            sdp=d.sdp,
        )


def call_record_fields(d: SipDialog, streams: list[StreamRecord], closed_by: "ClosedBy") -> dict[str, Any]:
    """Every field of the call's record, in the schema's order, for ``CallRecord.trusted``.

    Unvalidated (issue 14: validating cost ~20 us a call, a tenth of the detector on signalling):
    the text comes from events that were validated or built by the parser's one decode, the
    numbers are the dialog's. ``tests/detector/test_call_record_fields.py`` holds the trusted
    record equal, JSON included, to the validated one on every shared capture.
    """
    moses = [s.mos for s in streams if s.mos is not None and s.packets > 0]
    return {
        "kind": "call_record",
        "schema_version": SCHEMA_VERSION,
        "call_id": d.call_id,
        "method": "INVITE",
        "from_uri": d.from_uri,
        "to_uri": d.to_uri,
        "from_tag": d.from_tag,
        "to_tag": d.to_tag,
        "caller_ip": d.caller_ip,
        "callee_ip": d.callee_ip,
        "user_agent": d.user_agent,
        "state": d.state,
        "final_status": d.final_status,
        "final_reason": d.final_reason,
        "failure_class": None,
        "reason_header": d.reason_header,
        "hangup_by": "caller" if d.hangup_by == "caller" else "callee" if d.hangup_by else None,
        "start_ts": d.start_ts,
        "answer_ts": d.answer_ts,
        "end_ts": d.end_ts,
        "post_dial_delay_ms": d.post_dial_delay_ms,
        "setup_time_ms": d.setup_time_ms,
        "duration_s": d.duration_s,
        "messages": d.messages,
        "retransmissions": d.retransmissions,
        "requests": dict(d.requests),
        "responses": dict(d.responses),
        "offered_media": list(d.offered_media),
        "answered_media": list(d.answered_media),
        "streams": [_stream_label(s) for s in streams],
        "codecs": sorted({s.codec for s in streams if s.codec}),
        "mos": min(moses) if moses else None,
        "category": "ok",
        "problems": [],
        "unreliable": any(s.unreliable for s in streams),
        "first_frame": d.first_frame,
        "closed_by": closed_by,
    }


def _stream_label(s: StreamRecord) -> str:
    return f"{s.src_ip}:{s.src_port}->{s.dst_ip}:{s.dst_port}/0x{s.ssrc:08X}"
