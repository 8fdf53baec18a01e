"""The learned model: per-feature range checks next to an IsolationForest, and the scorer the detector calls.

Rules name the problems someone thought of; the model flags calls unlike
the baseline it was trained on, in two ways that answer different questions:

* range checks (``feature_ranges``): one feature far outside everything the
  baseline showed (a call eight times longer than any, a direction carrying
  a tenth of the other's packets, a codec or user agent it never had) is
  anomalous by itself;
* the forest, over robust z-scores: a *combination* no baseline call had,
  each value inside its range.

A call's score is the larger of its worst range ratio and its forest score
over the forest's limit, so 1.0 is the edge for both; how the margin and
the limit are calibrated is in ``model_fit``, the file format in
``model_file``. Every alert names the features that made it, with the
value and the range the baseline showed.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import sklearn
import skops
from sklearn.ensemble import IsolationForest

from callqual.detector.call_context import CallContext
from callqual.detector.feature_ranges import CategoryShares, FeatureRanges, Matrix
from callqual.detector.features import FEATURE_VERSION, SCALES, CallFeatures, extract
from callqual.detector.rules.base import evidence_from, make_alert_id
from callqual.schemas import Alert

RULE_ID = "anomalous_call"
#: ``ModelScorer`` alerts on scores above this: 1.0 is the edge of the calibrated ranges and limit.
DEFAULT_THRESHOLD = 1.0
#: Features named in an alert.
TOP_FEATURES = 3


def versions() -> dict[str, str]:
    """What a saved model must match to be loaded."""
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "skops": skops.__version__,
        "feature_version": str(FEATURE_VERSION),
    }


class Reason(NamedTuple):
    """One feature behind an alert: its value and the range the baseline showed (display strings)."""

    feature: str
    value: str
    baseline: str
    #: distance from the baseline's median over the distance to the range's edge (> 1: outside)
    ratio: float


class Verdict(NamedTuple):
    score: float
    forest_score: float
    range_ratio: float
    reasons: list[Reason]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def features_of(contexts: Sequence[CallContext]) -> tuple[Matrix, list[list[str]]]:
    feats = [extract(ctx) for ctx in contexts]
    x = np.array([f.vector() for f in feats], dtype=np.float64).reshape(len(feats), len(CallFeatures.names()))
    return x, [f.categories() for f in feats]


@dataclass(slots=True)
class CallModel:
    """Ranges, category shares and a forest learned from one baseline, with their calibrated limits."""

    forest: IsolationForest
    ranges: FeatureRanges
    categories: CategoryShares
    #: range margin in robust spreads (see ``feature_ranges``), calibrated in ``fit``
    margin: float
    #: forest anomaly score (in (0, 1]) at which the forest alone calls a call anomalous
    forest_limit: float
    feature_names: list[str] = field(default_factory=CallFeatures.names)
    metadata: dict[str, str] = field(default_factory=versions)
    trained_calls: int = 0
    #: baseline calls left out as likely contamination
    trimmed_calls: int = 0
    #: out-of-fold share of baseline calls scoring above 1 (the false-positive rate to expect)
    expected_fpr: float = 0.0

    def score_matrix(self, x: Matrix, cats: Sequence[Sequence[str]]) -> tuple[Matrix, Matrix, Matrix, Matrix]:
        """(scores, range ratios per feature, category ratios, forest scores) of the calls ``x``, ``cats``."""
        ranges = self.ranges.ratios(x, self.margin)
        categories = self.categories.ratios(cats)
        forest = -np.asarray(self.forest.score_samples(self.ranges.z(x)), dtype=np.float64)
        worst = np.maximum(row_max(ranges), row_max(categories))
        return np.maximum(worst, forest / self.forest_limit), ranges, categories, forest

    def verdict(self, ctx: CallContext) -> Verdict:
        """The call's score (> 1: unlike the baseline) and the features that made it."""
        x, cats = features_of([ctx])
        scores, ranges, categories, forest = self.score_matrix(x, cats)
        reasons = [
            Reason(name, cats[0][j] or "(none)", self._share_text(name), float(categories[0, j]))
            for j, name in enumerate(self.categories.names)
            if categories[0, j] > 1.0
        ]
        z = self.ranges.z(x)[0]
        # Off-range features first (worst first); then, for a forest-only verdict, the furthest by |z|.
        order = sorted(range(len(self.feature_names)), key=lambda j: (-ranges[0, j], -abs(z[j])))
        for j in order:
            if len(reasons) >= TOP_FEATURES or (reasons and ranges[0, j] <= 1.0):
                break
            if np.isnan(x[0, j]):
                continue
            reasons.append(self._range_reason(j, float(x[0, j]), float(ranges[0, j])))
        worst = max(float(row_max(ranges)[0]), float(row_max(categories)[0]))
        return Verdict(float(scores[0]), float(forest[0]), worst, reasons)

    def _range_reason(self, j: int, value: float, ratio: float) -> Reason:
        name = self.feature_names[j]
        unit = SCALES[name].unit
        if self.ranges.lo[j] > self.ranges.hi[j]:
            seen = "never applicable"
        else:
            lo, hi = self.ranges.baseline_range(j)
            seen = f"{_fmt(lo)}..{_fmt(hi)}{unit}"
        return Reason(name, f"{_fmt(value)}{unit}", seen, round(ratio, 3))

    def _share_text(self, name: str) -> str:
        top = sorted(self.categories.shares[name].items(), key=lambda kv: -kv[1])[:3]
        return "seen: " + ", ".join(f"{value or '(none)'} {share:.0%}" for value, share in top)


def row_max(m: Matrix) -> Matrix:
    return m.max(axis=1) if m.shape[1] else np.zeros(len(m))


class ModelScorer:
    """The detector's ``CallScorer``: one ``anomalous_call`` alert per call scoring above the threshold."""

    def __init__(self, model: CallModel, threshold: float | None = None, evidence_limit: int = 5) -> None:
        self.model = model
        #: 1.0 = the calibrated ranges and limit; raise it for fewer, more certain alerts
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self.evidence_limit = evidence_limit

    def score(self, ctx: CallContext) -> Alert | None:
        verdict = self.model.verdict(ctx)
        if verdict.score <= self.threshold:
            return None
        rec = ctx.record
        explained = "; ".join(f"{r.feature} {r.value} (baseline {r.baseline})" for r in verdict.reasons)
        last_ts = rec.end_ts if rec.end_ts is not None else max((m.ts for m in ctx.messages), default=0.0)
        details: dict[str, float | int | str | None] = {
            "score": round(verdict.score, 4),
            "threshold": round(self.threshold, 4),
            "range_ratio": round(verdict.range_ratio, 4),
            "forest_score": round(verdict.forest_score, 4),
            "forest_limit": self.model.forest_limit,
            "top_features": ",".join(r.feature for r in verdict.reasons),
            "explanation": explained,
        }
        for r in verdict.reasons:
            details[f"value_{r.feature}"] = r.value
            details[f"baseline_{r.feature}"] = r.baseline
        return Alert(
            alert_id=make_alert_id(RULE_ID, rec.call_id, rec.first_frame),
            rule=RULE_ID,
            severity="warning",
            call_id=rec.call_id,
            source_ip=rec.caller_ip,
            first_ts=rec.start_ts,
            last_ts=max(last_ts, rec.start_ts),
            summary=(
                f"call unlike the baseline (score {verdict.score:.2f} > {self.threshold:.2f}): {explained}"
            ),
            details=details,
            evidence=evidence_from(ctx.messages, self.evidence_limit),
        )
