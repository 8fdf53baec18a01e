"""The collector -> detector ordering contract, defined once for producer and consumer.

Each event carries ``seq`` (emission order of one collector run) and ``clock`` (the
collector's capture clock at emission); ``callqual-marker`` messages (``watermark``
once per capture second, ``end`` when the capture ends) go to every partition, so a
consumer reading several partitions can merge them back into emission order and
know when no earlier event can still arrive. Pure: no Kafka client here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum

from callqual.transport.base import Headers

H_SEQ = "seq"
H_CLOCK = "clock"
H_MARKER = "callqual-marker"
H_RUN = "run"
#: On the detector's ``sources`` topic: the ``events`` partition an observation came from
H_ORIGIN = "origin"

#: ``(clock, seq)``: the order events were emitted in
Position = tuple[float, float]
#: After every position: what an ``end`` marker promises
END_POSITION: Position = (math.inf, math.inf)
#: Before every position: a partition that has shown nothing yet
START_POSITION: Position = (-math.inf, -1.0)


class Marker(StrEnum):
    WATERMARK = "watermark"
    END = "end"


def event_headers(seq: int, clock: float, run: bytes) -> Headers:
    return ((H_SEQ, str(seq).encode()), (H_CLOCK, repr(clock).encode()), (H_RUN, run))


def marker_headers(kind: Marker, seq: int, clock: float, run: bytes) -> Headers:
    return ((H_MARKER, kind.value.encode()), *event_headers(seq, clock, run))


def header_dict(headers: Headers) -> dict[str, bytes]:
    """Headers by name: a repeated name keeps its last value (as librdkafka's readers do)."""
    return dict(headers)


def position_of(headers: Mapping[str, bytes]) -> Position | None:
    """The ``(clock, seq)`` of a message; None when absent or not finite (a foreign producer)."""
    try:
        position = (float(headers[H_CLOCK]), float(headers[H_SEQ]))
    except (KeyError, ValueError):
        return None
    return position if all(map(math.isfinite, position)) else None


def marker_of(headers: Mapping[str, bytes]) -> Marker | None:
    """The marker kind; raises ValueError for a marker header naming no known kind."""
    raw = headers.get(H_MARKER)
    if raw is None:
        return None
    return Marker(raw.decode(errors="replace"))
