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
over the forest's limit, so 1.0 is the edge for both. The limits are set
from the baseline alone for a false-positive budget: ``fit`` scores each
fifth of the baseline with a model fitted on the other four fifths, then
picks the smallest range margin, and the forest limit, that keep those
out-of-fold false positives within half the budget each. Contamination is
handled first: the baseline calls most unlike the rest (robust |z| over
``TRIM_Z`` or a rare category, at most ``contamination`` of them) are left
out of everything, so a few odd calls in a "normal" day do not teach the
model that odd is normal. Every alert names the features that made it,
with the value and the range the baseline showed.

Persistence uses skops (no pickle: only the types in :data:`TRUSTED_TYPES`
are loaded) with a format number and the library and feature versions in
the file; anything else is refused with :class:`ModelVersionError`.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sklearn
import skops
import skops.io as sio
from sklearn.ensemble import IsolationForest

from callqual.detector.call_context import CallContext
from callqual.detector.feature_ranges import CategoryShares, FeatureRanges, Matrix
from callqual.detector.features import FEATURE_VERSION, SCALES, CallFeatures, extract
from callqual.detector.rules.base import evidence_from, make_alert_id
from callqual.schemas import Alert

RULE_ID = "anomalous_call"
#: Bumped whenever what a model file holds changes; files of another format are refused.
MODEL_FORMAT = 2
#: ``ModelScorer`` alerts on scores above this: 1.0 is the edge of the calibrated ranges and limit.
DEFAULT_THRESHOLD = 1.0
#: Share of normal calls the model may flag, calibrated on the baseline.
DEFAULT_TARGET_FPR = 0.01
#: The range checks' part of that budget; the forest gets the rest.
RANGE_SHARE = 0.8
#: At most this share of the baseline is taken for anomalies that slipped into it and left out.
DEFAULT_CONTAMINATION = 0.1
#: A baseline call this many robust sigmas from the median in some feature may be contamination.
TRIM_Z = 4.0
#: A category shared by fewer baseline calls than this is as odd as a value off its range.
DEFAULT_RARE_SHARE = 0.02
#: Candidate range margins (in robust spreads past the baseline's extremes), tried smallest first.
#: "Far outside" starts one spread out: at 0.5, a training day whose longest call was 66 s flagged
#: the 90 s calls of other days (1.4 % of normal calls on seed 404).
MARGINS: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: Folds of the out-of-fold calibration.
FOLDS = 5
#: Features named in an alert.
TOP_FEATURES = 3
#: Exactly what a model file may contain; anything else makes ``load`` fail.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "builtins.int",
    "numpy.int64",
    "numpy.float64",
)
#: What format-1 files (a log1p -> StandardScaler -> forest pipeline) held: loaded only to be refused
#: with a clear message rather than an "untrusted type" error.
_FORMAT_1_TYPES: tuple[str, ...] = (
    "numpy.log1p",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
)


class ModelError(Exception):
    """The model file cannot be used."""


class ModelVersionError(ModelError):
    """The model was saved in another format or by other library or feature versions than the running ones."""


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


def _features(contexts: Sequence[CallContext]) -> tuple[Matrix, list[list[str]]]:
    feats = [extract(ctx) for ctx in contexts]
    x = np.array([f.vector() for f in feats], dtype=np.float64).reshape(len(feats), len(CallFeatures.names()))
    return x, [f.categories() for f in feats]


def _forest(z: Matrix, random_state: int, n_estimators: int) -> IsolationForest:
    # score_samples is used with a limit of our own, so the forest's contamination setting plays no part.
    return IsolationForest(n_estimators=n_estimators, random_state=random_state).fit(z)


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
        worst = np.maximum(_row_max(ranges), _row_max(categories))
        return np.maximum(worst, forest / self.forest_limit), ranges, categories, forest

    def verdict(self, ctx: CallContext) -> Verdict:
        """The call's score (> 1: unlike the baseline) and the features that made it."""
        x, cats = _features([ctx])
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
            lo, hi = self.ranges.baseline_range(j)
            unit = SCALES[self.feature_names[j]].unit
            reasons.append(
                Reason(
                    self.feature_names[j],
                    f"{_fmt(float(x[0, j]))}{unit}",
                    f"{_fmt(lo)}..{_fmt(hi)}{unit}"
                    if lo <= hi or self.feature_names[j] == "hour"
                    else "none",
                    round(float(ranges[0, j]), 3),
                )
            )
        worst = max(float(_row_max(ranges)[0]), float(_row_max(categories)[0]))
        return Verdict(float(scores[0]), float(forest[0]), worst, reasons)

    def _share_text(self, name: str) -> str:
        top = sorted(self.categories.shares[name].items(), key=lambda kv: -kv[1])[:3]
        return "seen: " + ", ".join(f"{value or '(none)'} {share:.0%}" for value, share in top)

    def save(self, path: Path) -> None:
        sio.dump(
            {
                "format": MODEL_FORMAT,
                "forest": self.forest,
                "ranges": self.ranges.as_dict(),
                "categories": {"names": self.categories.names, "shares": self.categories.shares},
                "rare_share": float(self.categories.rare_share),
                "margin": float(self.margin),
                "forest_limit": float(self.forest_limit),
                "feature_names": list(self.feature_names),
                "metadata": dict(self.metadata),
                "trained_calls": int(self.trained_calls),
                "trimmed_calls": int(self.trimmed_calls),
                "expected_fpr": float(self.expected_fpr),
            },
            path,
        )


def _row_max(m: Matrix) -> Matrix:
    return m.max(axis=1) if m.shape[1] else np.zeros(len(m))


def _contamination(
    x: Matrix, cats: list[list[str]], contamination: float, rare_share: float
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Baseline calls to leave out: beyond ``TRIM_Z`` robust sigmas or of a rare category, oddest first."""
    ranges = FeatureRanges.learn(x, CallFeatures.names())
    odd = _row_max(np.abs(ranges.z(x))) / TRIM_Z
    shares = CategoryShares.learn(cats, CallFeatures.category_names(), rare_share)
    odd = np.maximum(odd, _row_max(shares.ratios(cats)))
    allowed = int(contamination * len(x))
    candidates = np.flatnonzero(odd > 1.0)
    drop = candidates[np.argsort(-odd[candidates], kind="stable")][:allowed]
    mask = np.zeros(len(x), dtype=bool)
    mask[drop] = True
    return mask


def _calibrate(
    x: Matrix,
    cats: list[list[str]],
    *,
    rare_share: float,
    target_fpr: float,
    random_state: int,
    n_estimators: int,
) -> tuple[float, float, float]:
    """(margin, forest limit, expected FPR) from out-of-fold scores of the baseline.

    The margin is the smallest that keeps out-of-fold range alerts within
    ``RANGE_SHARE`` of the budget; the forest limit is the quantile that
    leaves the forest the rest, plus the spread of its tail (90th to 99th
    percentile).
    """
    rng = np.random.default_rng(random_state)
    fold = rng.permutation(len(x)) % FOLDS
    per_margin = np.zeros((len(x), len(MARGINS)))
    category = np.zeros(len(x))
    forest_oof = np.zeros(len(x))
    for k in range(FOLDS):
        train, held = fold != k, fold == k
        if train.sum() < 2 or not held.any():
            continue
        ranges = FeatureRanges.learn(x[train], CallFeatures.names())
        train_cats = [c for c, t in zip(cats, train, strict=True) if t]
        shares = CategoryShares.learn(train_cats, CallFeatures.category_names(), rare_share)
        category[held] = _row_max(shares.ratios([c for c, h in zip(cats, held, strict=True) if h]))
        for m, margin in enumerate(MARGINS):
            per_margin[held, m] = _row_max(ranges.ratios(x[held], margin))
        forest = _forest(ranges.z(x[train]), random_state, n_estimators)
        forest_oof[held] = -forest.score_samples(ranges.z(x[held]))
    # The margin answers for the ranges only: no margin makes a rare category common.
    fprs = (per_margin > 1.0).mean(axis=0)
    ok = np.flatnonzero(fprs <= RANGE_SHARE * target_fpr)
    m = int(ok[0]) if len(ok) else len(MARGINS) - 1
    # A new day's normal calls score a little above held-out folds of the training day (measured:
    # 99th percentile 0.639 against 0.626), so the forest's limit gets a margin of its own tail spread.
    q90, q99, top = np.quantile(forest_oof, [0.9, 0.99, 1.0 - (1.0 - RANGE_SHARE) * target_fpr])
    forest_limit = float(top + (q99 - q90))
    combined = np.maximum(np.maximum(per_margin[:, m], category), forest_oof / forest_limit)
    return MARGINS[m], round(forest_limit, 6), round(float((combined > 1.0).mean()), 4)


def fit(
    contexts: Sequence[CallContext],
    *,
    random_state: int = 0,
    n_estimators: int = 100,
    target_fpr: float = DEFAULT_TARGET_FPR,
    contamination: float = DEFAULT_CONTAMINATION,
    rare_share: float = DEFAULT_RARE_SHARE,
) -> CallModel:
    """Fit on baseline calls: trim likely contamination, calibrate the limits out of fold, fit on the rest.

    ``random_state`` fixes the folds and the forest: the same calls always
    give the same model and the same scores.
    """
    if len(contexts) < 2:
        raise ValueError(f"need at least 2 calls to train, got {len(contexts)}")
    x, cats = _features(contexts)
    drop = _contamination(x, cats, contamination, rare_share)
    keep = ~drop
    x_kept, cats_kept = x[keep], [c for c, k in zip(cats, keep, strict=True) if k]
    margin, forest_limit, expected_fpr = _calibrate(
        x_kept,
        cats_kept,
        rare_share=rare_share,
        target_fpr=target_fpr,
        random_state=random_state,
        n_estimators=n_estimators,
    )
    ranges = FeatureRanges.learn(x_kept, CallFeatures.names())
    return CallModel(
        forest=_forest(ranges.z(x_kept), random_state, n_estimators),
        ranges=ranges,
        categories=CategoryShares.learn(cats_kept, CallFeatures.category_names(), rare_share),
        margin=margin,
        forest_limit=forest_limit,
        trained_calls=len(x_kept),
        trimmed_calls=int(drop.sum()),
        expected_fpr=expected_fpr,
    )


def load(path: Path) -> CallModel:
    """Load a model file, refusing other formats and versions and any type not in :data:`TRUSTED_TYPES`."""
    try:
        with warnings.catch_warnings():
            # sklearn warns when unpickling across versions; the check below gives the real error.
            warnings.simplefilter("ignore")
            obj = sio.load(path, trusted=[*TRUSTED_TYPES, *_FORMAT_1_TYPES])
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: not a callqual model file ({exc})") from exc
    if not isinstance(obj, dict) or not ({"forest", "pipeline"} & set(obj)):
        raise ModelError(f"{path}: not a callqual model file")
    fmt = obj.get("format", 1)
    if fmt != MODEL_FORMAT:
        raise ModelVersionError(
            f"{path}: model file format {fmt} (file) != {MODEL_FORMAT} (running); "
            "retrain it with callqual train"
        )
    saved = {str(k): str(v) for k, v in dict(obj.get("metadata") or {}).items()}
    current = versions()
    diff = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
    if diff:
        detail = ", ".join(f"{k} {old} (file) != {new} (running)" for k, (old, new) in sorted(diff.items()))
        raise ModelVersionError(f"{path}: model saved with other versions: {detail}; retrain it")
    names = [str(n) for n in obj.get("feature_names", [])]
    if names != CallFeatures.names() or not isinstance(obj["forest"], IsolationForest):
        raise ModelVersionError(f"{path}: model features differ from feature version {FEATURE_VERSION}")
    cats = obj["categories"]
    return CallModel(
        forest=obj["forest"],
        ranges=FeatureRanges.from_dict(obj["ranges"]),
        categories=CategoryShares(
            [str(n) for n in cats["names"]],
            {str(k): {str(v): float(s) for v, s in d.items()} for k, d in cats["shares"].items()},
            float(obj["rare_share"]),
        ),
        margin=float(obj["margin"]),
        forest_limit=float(obj["forest_limit"]),
        feature_names=names,
        metadata=saved,
        trained_calls=int(obj.get("trained_calls", 0)),
        trimmed_calls=int(obj.get("trimmed_calls", 0)),
        expected_fpr=float(obj.get("expected_fpr", 0.0)),
    )


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
