"""What the baseline showed per feature: robust centre and spread, the range seen, how far past it is odd.

A forest isolates calls by random splits *inside* the training range, so a
value far outside everything the baseline showed (a call eight times longer
than any, one direction carrying a tenth of the other's packets) is isolated
no faster than the most extreme training call: it needs a check of its own.
Each numeric feature gets one here, learned from the baseline alone:

* values are scaled (log1p for counts and times, circular for the hour,
  cut where the baseline has its longest quiet stretch);
* centre = median, spread = a robust sigma (IQR or 5-95 % range, whichever
  is wider, never below the feature's resolution ``Scale.floor``);
* the range is what the (trimmed) baseline showed, widened on each side by
  ``margin`` spreads: a widely spread feature earns a wide margin, a tight
  one a narrow margin, and ``margin`` itself is calibrated by the model for
  a false-positive budget. (The spread of the tail alone, extreme minus the
  90 % quantile, was tried first: a small second mode, such as the 5 % of
  INVITEs carrying carrier headers, made it as wide as the gap between the
  modes.)

A call's *ratio* on a feature is its distance from the centre over the
distance from the centre to the range's edge on its side: above 1 it lies
outside. Categories (codec, user agent) are judged by their share of the
baseline: one rarer than ``rare_share`` is as odd as a value off the range.
Pure numpy: no I/O, no clock.
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from callqual.detector.features import SCALES

Matrix = np.ndarray[Any, np.dtype[np.float64]]

#: Ratios are capped here: "far outside" needs no more precision, and the forest's inputs stay finite.
MAX_RATIO = 100.0
#: A category seen in fewer baseline calls than this is rare however small the baseline: once or twice
#: is no evidence of normal.
MIN_CATEGORY_CALLS = 3
_DAY_H = 24.0
#: The hours of the day a baseline must cover before the hour of a call is judged at all.
MIN_HOUR_SPAN_H = 6.0


def hour_cut(hours: Matrix) -> float:
    """Where to open the day's circle: the middle of the longest stretch without any baseline call.

    NaN when the baseline covers less than ``MIN_HOUR_SPAN_H`` of the day
    (an hour-long lab capture says nothing about which hours are normal, and
    another capture taken later would be all "odd hours"): the hour is then
    not judged at all.
    """
    h = np.sort(np.mod(hours[np.isfinite(hours)], _DAY_H))
    if len(h) == 0:
        return math.nan
    gaps = np.diff(np.append(h, h[0] + _DAY_H))
    i = int(np.argmax(gaps))
    if _DAY_H - gaps[i] < MIN_HOUR_SPAN_H:
        return math.nan
    return float(np.mod(h[i] + gaps[i] / 2, _DAY_H))


@dataclass(slots=True)
class FeatureRanges:
    """Per-feature statistics of a baseline, in scaled units (see the module docstring)."""

    names: list[str]
    center: Matrix
    spread: Matrix
    lo: Matrix
    hi: Matrix
    hour_cut: float = 0.0

    @classmethod
    def learn(cls, x: Matrix, names: Sequence[str]) -> "FeatureRanges":
        """Statistics of the rows of ``x`` (raw feature values, NaN = not applicable)."""
        names = list(names)
        cut = hour_cut(x[:, names.index("hour")]) if "hour" in names else 0.0
        n = len(names)
        zeros = np.zeros
        ranges = cls(names, zeros(n), zeros(n), zeros(n), zeros(n), hour_cut=cut)
        v = ranges.scale(x)
        floors = np.array([SCALES[n].floor for n in names])
        for j in range(len(names)):
            col = v[:, j][np.isfinite(v[:, j])]
            if len(col) == 0:
                # Never applicable in the baseline: no range to hold a call to (lo > hi marks it).
                ranges.lo[j], ranges.hi[j] = np.inf, -np.inf
                ranges.spread[j] = floors[j]
                continue
            q05, q25, q50, q75, q95 = np.quantile(col, [0.05, 0.25, 0.5, 0.75, 0.95])
            ranges.center[j] = q50
            ranges.spread[j] = max((q75 - q25) / 1.349, (q95 - q05) / 3.29, floors[j])
            ranges.lo[j], ranges.hi[j] = float(col.min()), float(col.max())
        return ranges

    def scale(self, x: Matrix) -> Matrix:
        """Raw feature values -> scaled units (NaN stays NaN)."""
        v = np.array(x, dtype=np.float64, copy=True)
        for j, name in enumerate(self.names):
            kind = SCALES[name].kind
            if kind == "log":
                v[:, j] = np.log1p(np.maximum(v[:, j], 0.0))
            elif kind == "hour":
                v[:, j] = np.mod(v[:, j] - self.hour_cut, _DAY_H)
        return v

    def unscale(self, j: int, value: float) -> float:
        kind = SCALES[self.names[j]].kind
        if kind == "log":
            return float(np.expm1(value))
        if kind == "hour":
            return float(np.mod(value + self.hour_cut, _DAY_H))
        return value

    def z(self, x: Matrix) -> Matrix:
        """Robust z-scores (scaled value - centre) / spread; 0 where not applicable, capped at MAX_RATIO."""
        z = (self.scale(x) - self.center) / self.spread
        return np.clip(np.nan_to_num(z, nan=0.0), -MAX_RATIO, MAX_RATIO)

    def ratios(self, x: Matrix, margin: float) -> Matrix:
        """Per call and feature: distance from the centre over distance to the range edge (> 1: outside)."""
        v = self.scale(x)
        known = self.lo <= self.hi
        upper = np.where(known, self.hi + margin * self.spread, np.inf)
        lower = np.where(known, self.lo - margin * self.spread, -np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            above = (v - self.center) / (upper - self.center)
            below = (self.center - v) / (self.center - lower)
        r = np.where(v >= self.center, above, below)
        return np.asarray(
            np.clip(np.nan_to_num(r, nan=0.0, posinf=MAX_RATIO), 0.0, MAX_RATIO), dtype=np.float64
        )

    def baseline_range(self, j: int) -> tuple[float, float]:
        """The range the baseline showed for feature ``j``, in raw units."""
        return self.unscale(j, float(self.lo[j])), self.unscale(j, float(self.hi[j]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "center": self.center,
            "spread": self.spread,
            "lo": self.lo,
            "hi": self.hi,
            "hour_cut": float(self.hour_cut),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureRanges":
        def arr(key: str) -> Matrix:
            return np.asarray(d[key], dtype=np.float64)

        return cls(
            [str(n) for n in d["names"]],
            arr("center"),
            arr("spread"),
            arr("lo"),
            arr("hi"),
            hour_cut=float(d["hour_cut"]),
        )


@dataclass(slots=True)
class CategoryShares:
    """Each categorical feature's values and the share of baseline calls that had them."""

    names: list[str]
    shares: dict[str, dict[str, float]]
    #: the share below which a value is rare: the asked-for share, or MIN_CATEGORY_CALLS of the baseline
    rare_share: float

    @classmethod
    def learn(
        cls, rows: Sequence[Sequence[str]], names: Sequence[str], rare_share: float
    ) -> "CategoryShares":
        n = max(len(rows), 1)
        shares = {
            name: {value: count / n for value, count in Counter(row[j] for row in rows).items()}
            for j, name in enumerate(names)
        }
        return cls(list(names), shares, max(rare_share, MIN_CATEGORY_CALLS / n))

    def ratios(self, rows: Sequence[Sequence[str]]) -> Matrix:
        """Per call and category: ``rare_share`` over the value's baseline share (> 1: rarer than that)."""
        out = np.zeros((len(rows), len(self.names)))
        floor = self.rare_share / MAX_RATIO
        for i, row in enumerate(rows):
            for j, name in enumerate(self.names):
                out[i, j] = self.rare_share / max(self.shares[name].get(row[j], 0.0), floor)
        return out
