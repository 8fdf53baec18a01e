"""What a report's summary takes from the collector, as one value that can cross a process boundary."""

from collections import Counter
from dataclasses import dataclass

from callqual.collector.collector import Collector


@dataclass(frozen=True, slots=True)
class CollectorTotals:
    """Frame and byte counts, capture time span, and counted errors, skips and drops by reason."""

    frames: int
    bytes: int
    first_ts: float | None
    last_ts: float | None
    errors: Counter[str]
    skipped: Counter[str]
    dropped: Counter[str]

    @classmethod
    def of(cls, c: Collector) -> "CollectorTotals":
        return cls(c.frames, c.bytes, c.first_ts, c.last_ts, c.all_errors(), c.all_skipped(), c.all_dropped())
