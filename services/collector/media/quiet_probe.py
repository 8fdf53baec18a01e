"""Which calls to report before the next interval tick: those where one direction fell quiet.

The detector can call a direction's silence a stop only when a report batch shows the other
direction still flowing; with reports every 10 s that adds up to 10 s to every mid-call
one-way alert. So a call whose media flows one way only (a direction idle, or never started)
is reported every ``quiet_report_interval_s`` instead, and so is a call with a flow that never
reported (so a probe batch, like a full tick, shows every live call's media: ``no_media`` reads
a batch without a call's streams as proof it has none). A probed call reports all its flows with
packets since their last report, as a full tick would: a half-reported call would look one-way.
Bounded: at most one report per flow per ``quiet_report_interval_s``. Pure.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol, TypeVar

#: A flow with no packet for this long is quiet (RTP sends every 10-60 ms; SIP never pauses it).
QUIET_AFTER_S: Final[float] = 1.0


class ReportedFlow(Protocol):
    """What the schedule needs of a media flow: its last packet; its last report's tick and last packet."""

    last_ts: float
    reported_ts: float
    reported_last_ts: float


F = TypeVar("F", bound=ReportedFlow)


def probed_flows(flows_by_call: Mapping[str, Sequence[F]], now: float, interval_s: float) -> Iterable[F]:
    """The flows to report now, call by call (see the module docstring)."""
    for flows in flows_by_call.values():
        if now - max(f.reported_ts for f in flows) < interval_s:
            continue
        flowing = sum(1 for f in flows if now - f.last_ts < QUIET_AFTER_S)
        fresh = any(f.reported_ts == float("-inf") for f in flows)
        if fresh or 0 < flowing < max(2, len(flows)):
            yield from (f for f in flows if f.last_ts > f.reported_last_ts)
