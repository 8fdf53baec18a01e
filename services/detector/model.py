"""The learned model: an IsolationForest over per-call features, and the scorer the detector calls.

Rules name the problems someone thought of; the forest flags calls unlike
the baseline it was trained on (odd hours, rare codecs, unusual duration and
setup-time combinations) even when every rule threshold is met. Each alert
names the features that made the call stand out, as z-scores against the
training distribution, so an operator can tell *why* without reading trees.

Persistence uses skops (no pickle: only the types listed in
:data:`TRUSTED_TYPES` are loaded) with the library and feature versions in
the file; a model from another sklearn/numpy/skops or feature version is
refused with :class:`ModelVersionError`, because a silently re-interpreted
forest scores garbage.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops
import skops.io as sio
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from callqual.detector.call_context import CallContext
from callqual.detector.features import FEATURE_VERSION, CallFeatures, extract
from callqual.detector.rules.base import evidence_from, make_alert_id
from callqual.schemas import Alert

RULE_ID = "anomalous_call"
#: ``ModelScorer`` alerts on scores above this (the model's scores are relative to its limits).
DEFAULT_THRESHOLD = 1.0
#: Training quantile at which both limits sit: the share of
#: baseline calls the model would itself flag is 1 - this.
DEFAULT_QUANTILE = 0.995
#: Spread floor (log1p units) of the range guard: see ``CallModel``.
Z_FLOOR = 0.1
#: The range guard's limit is never below this many standard deviations.
MIN_Z = 3.5
#: Training calls beyond this many standard deviations in some feature are left out of the refit.
TRIM_Z = 4.0
#: Features named in an alert.
TOP_FEATURES = 3
#: Exactly what a model file may contain; anything else makes ``load`` fail.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.log1p",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "builtins.int",
    "numpy.int64",
    "numpy.float64",
)


class ModelError(Exception):
    """The model file cannot be used."""


class ModelVersionError(ModelError):
    """The model was saved by other library or feature versions than the running ones."""


def versions() -> dict[str, str]:
    """What a saved model must match to be loaded."""
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "skops": skops.__version__,
        "feature_version": str(FEATURE_VERSION),
    }


def _matrix(contexts: Sequence[CallContext]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([extract(ctx).vector() for ctx in contexts], dtype=np.float64).reshape(
        len(contexts), len(CallFeatures.names())
    )


@dataclass(slots=True)
class CallModel:
    """A fitted pipeline (log1p -> standardise -> IsolationForest) and its calibrated limits.

    A call's score combines two views, each divided by its limit so that
    1.0 means "as unusual as the rarest baseline calls" for both:

    * the forest's anomaly score (how few random splits isolate the call),
      over ``forest_limit``;
    * the range guard, the largest per-feature |z| against the training
      distribution, over ``z_limit``. The forest draws its splits within the
      training range, so a value far *outside* it (a codec never seen, a
      night-time call in a business-hours baseline) is isolated no faster
      than the most extreme training call; the guard sees exactly that.

    The score is the larger of the two ratios; ``ModelScorer`` alerts above 1.
    """

    pipeline: Pipeline
    forest_limit: float
    z_limit: float
    feature_names: list[str] = field(default_factory=CallFeatures.names)
    metadata: dict[str, str] = field(default_factory=versions)
    trained_calls: int = 0

    def score_matrix(
        self, x: np.ndarray[Any, np.dtype[np.float64]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
        """(scores, signed guard z-scores per feature) of the rows of ``x``."""
        forest, z = self._raw(x)
        guard = np.abs(z).max(axis=1) if z.shape[1] else np.zeros(len(z))
        scores = np.maximum(forest / self.forest_limit, guard / self.z_limit)
        return np.asarray(scores, dtype=np.float64), z

    def _raw(
        self, x: np.ndarray[Any, np.dtype[np.float64]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
        """(forest anomaly scores in (0, 1], guard z-scores) without the limits."""
        scaled = self.pipeline[:-1].transform(x)
        forest = -np.asarray(self.pipeline[-1].score_samples(scaled), dtype=np.float64)
        scaler: StandardScaler = self.pipeline.named_steps["scale"]
        # A feature constant in training (a codec never seen) gets the floor as its spread,
        # so its first non-zero value counts as far out rather than as z = value - mean.
        spread = np.maximum(np.sqrt(scaler.var_), Z_FLOOR)
        z = (np.log1p(x) - scaler.mean_) / spread
        return forest, np.asarray(z, dtype=np.float64)

    def score_call(self, ctx: CallContext) -> tuple[float, list[tuple[str, float]]]:
        """The call's score (> 1: unlike the baseline) and the features furthest from the training data.

        Top features are by absolute z-score of the log-scaled value: how many
        training standard deviations away this call sits, signed.
        """
        scores, z = self.score_matrix(_matrix([ctx]))
        row = z[0]
        order = np.argsort(-np.abs(row), kind="stable")[:TOP_FEATURES]
        return float(scores[0]), [(self.feature_names[i], round(float(row[i]), 2)) for i in order]

    def save(self, path: Path) -> None:
        sio.dump(
            {
                "pipeline": self.pipeline,
                "forest_limit": float(self.forest_limit),
                "z_limit": float(self.z_limit),
                "feature_names": list(self.feature_names),
                "metadata": dict(self.metadata),
                "trained_calls": int(self.trained_calls),
            },
            path,
        )


def _fit_once(
    x: np.ndarray[Any, np.dtype[np.float64]], random_state: int, n_estimators: int, quantile: float
) -> CallModel:
    pipeline = Pipeline(
        [
            # Every feature is non-negative (see features.py): log1p tames heavy tails
            # (durations, packet counts) before standardising.
            ("log1p", FunctionTransformer(np.log1p)),
            ("scale", StandardScaler()),
            ("forest", IsolationForest(n_estimators=n_estimators, random_state=random_state)),
        ]
    )
    pipeline.fit(x)
    model = CallModel(pipeline=pipeline, forest_limit=1.0, z_limit=1.0, trained_calls=len(x))
    forest, z = model._raw(x)
    model.forest_limit = round(float(np.quantile(forest, quantile)), 6)
    model.z_limit = round(max(MIN_Z, float(np.quantile(np.abs(z).max(axis=1), quantile))), 6)
    return model


def fit(
    contexts: Sequence[CallContext],
    *,
    random_state: int = 0,
    n_estimators: int = 100,
    quantile: float = DEFAULT_QUANTILE,
) -> CallModel:
    """Fit on baseline calls; each limit is the ``quantile`` of its training values (z at least ``MIN_Z``).

    A baseline capture is never perfectly clean, and a handful of odd calls
    in it would teach the model that odd is normal (and inflate the limits).
    So the fit is done twice: the calls the first model finds beyond
    ``TRIM_Z`` standard deviations in some feature are dropped, and the model
    is refitted on the rest. ``random_state`` fixes the forest: the same
    calls always give the same model and the same scores.
    """
    if len(contexts) < 2:
        raise ValueError(f"need at least 2 calls to train, got {len(contexts)}")
    x = _matrix(contexts)
    model = _fit_once(x, random_state, n_estimators, quantile)
    _, z = model._raw(x)
    keep = np.abs(z).max(axis=1) <= TRIM_Z
    if 2 <= int(keep.sum()) < len(x):
        model = _fit_once(x[keep], random_state, n_estimators, quantile)
    return model


def load(path: Path) -> CallModel:
    """Load a model file, refusing other versions and any type not in :data:`TRUSTED_TYPES`."""
    try:
        with warnings.catch_warnings():
            # sklearn warns when unpickling across versions; the check below gives the real error.
            warnings.simplefilter("ignore")
            obj = sio.load(path, trusted=list(TRUSTED_TYPES))
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: not a callqual model file ({exc})") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("pipeline"), Pipeline):
        raise ModelError(f"{path}: not a callqual model file")
    saved = {str(k): str(v) for k, v in dict(obj.get("metadata") or {}).items()}
    current = versions()
    diff = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
    if diff:
        detail = ", ".join(f"{k} {old} (file) != {new} (running)" for k, (old, new) in sorted(diff.items()))
        raise ModelVersionError(f"{path}: model saved with other versions: {detail}; retrain it")
    names = [str(n) for n in obj.get("feature_names", [])]
    if names != CallFeatures.names():
        raise ModelVersionError(f"{path}: model features differ from feature version {FEATURE_VERSION}")
    return CallModel(
        pipeline=obj["pipeline"],
        forest_limit=float(obj["forest_limit"]),
        z_limit=float(obj["z_limit"]),
        feature_names=names,
        metadata=saved,
        trained_calls=int(obj.get("trained_calls", 0)),
    )


class ModelScorer:
    """The detector's ``CallScorer``: one ``anomalous_call`` alert per call scoring above the threshold."""

    def __init__(self, model: CallModel, threshold: float | None = None, evidence_limit: int = 5) -> None:
        self.model = model
        #: 1.0 = the calibrated limits; raise it for fewer, more certain alerts
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self.evidence_limit = evidence_limit

    def score(self, ctx: CallContext) -> Alert | None:
        score, top = self.model.score_call(ctx)
        if score <= self.threshold:
            return None
        rec = ctx.record
        named = ", ".join(f"{name} (z={z:+.1f})" for name, z in top)
        last_ts = rec.end_ts if rec.end_ts is not None else max((m.ts for m in ctx.messages), default=0.0)
        details: dict[str, float | int | str | None] = {
            "score": round(score, 4),
            "forest_limit": self.model.forest_limit,
            "z_limit": self.model.z_limit,
            "threshold": round(self.threshold, 4),
            "top_features": ",".join(name for name, _ in top),
        }
        for name, z in top:
            details[f"z_{name}"] = z
        return Alert(
            alert_id=make_alert_id(RULE_ID, rec.call_id, rec.first_frame),
            rule=RULE_ID,
            severity="warning",
            call_id=rec.call_id,
            source_ip=rec.caller_ip,
            first_ts=rec.start_ts,
            last_ts=max(last_ts, rec.start_ts),
            summary=f"call unlike the baseline (score {score:.3f} > {self.threshold:.3f}): {named}",
            details=details,
            evidence=evidence_from(ctx.messages, self.evidence_limit),
        )
