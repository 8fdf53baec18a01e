"""Compact updates about calls in flight: trying, ringing, answered, then quality every interval.

What the live views need (active calls, a call row from its INVITE on) without waiting for the
call record. Bounded: a state change is published once (at most three per call), quality at
most once per ``min_interval_s`` of capture time per call, and the table holds open calls only.
"""

from collections.abc import Callable
from dataclasses import dataclass

from callqual.detector.live_calls import StreamInterval
from callqual.detector.sip_dialog import SipDialog
from callqual.schemas import CallStateUpdate, LiveCallState, StreamRecord

CallStateSink = Callable[[CallStateUpdate], None]


@dataclass(init=False, slots=True)
class _Published:
    state: LiveCallState
    ts: float

    def __init__(
        self,
        state: LiveCallState,
        ts: float,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.state = state
        self.ts = ts


def live_state(dialog: SipDialog) -> LiveCallState | None:
    """The in-flight state of a dialog; None once it ended (its record says the rest)."""
    if dialog.ended_ts is not None or dialog.end_ts is not None:
        return None
    if dialog.answer_ts is not None:
        return "answered"
    return "ringing" if dialog.ringing_ts is not None else "trying"


class CallStatePublisher:
    def __init__(self, emit: CallStateSink, max_calls: int, min_interval_s: float = 5.0) -> None:
        self._emit = emit
        self._published: dict[str, _Published] = {}
        self.max_calls = max_calls
        self.min_interval_s = min_interval_s
        self.published = 0
        self.rate_limited = 0

    def on_dialog(self, dialog: SipDialog, ts: float) -> None:
        """After a SIP message: publish when the call's state changed."""
        state = live_state(dialog)
        seen = self._published.get(dialog.call_id)
        if state is None or (seen is not None and seen.state == state):
            return
        if seen is None and len(self._published) >= self.max_calls:
            return
        self._publish(_update(dialog, ts, state))

    def on_quality(
        self,
        dialog: SipDialog,
        ts: float,
        streams: list[StreamRecord],
        intervals: list[StreamInterval],
        problems: list[str],
    ) -> None:
        """After a batch of interval reports: the answered call's current quality, rate-limited."""
        seen = self._published.get(dialog.call_id)
        if seen is None or live_state(dialog) != "answered":
            return
        if ts - seen.ts < self.min_interval_s:
            self.rate_limited += 1
            return
        moses = [s.mos for s in streams if s.mos is not None]
        losses = [iv.lost / iv.expected for iv in intervals if iv.expected > 0]
        quality = {
            "streams": len(streams),
            "mos": min(moses) if moses else None,
            "loss_ratio": round(max(0.0, *losses), 5) if losses else None,
            "jitter_ms": max((s.mean_jitter_ms for s in streams), default=None),
            "problems": sorted(problems),
        }
        self._publish(_update(dialog, ts, "answered").model_copy(update=quality))

    def forget(self, call_id: str) -> None:
        self._published.pop(call_id, None)

    def _publish(self, update: CallStateUpdate) -> None:
        self._published[update.call_id] = _Published(update.state, update.ts)
        self.published += 1
        self._emit(update)


def _update(d: SipDialog, ts: float, state: LiveCallState) -> CallStateUpdate:
    return CallStateUpdate(
        call_id=d.call_id,
        ts=ts,
        state=state,
        from_uri=d.from_uri,
        to_uri=d.to_uri,
        caller_ip=d.caller_ip,
        callee_ip=d.callee_ip,
        user_agent=d.user_agent,
        start_ts=d.start_ts,
        ringing_ts=d.ringing_ts,
        answer_ts=d.answer_ts,
        first_frame=d.first_frame,
    )
