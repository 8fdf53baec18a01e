"""Model files: skops (no pickle), a format number, and the versions a model must match to be loaded.

Only the types in :data:`TRUSTED_TYPES` are loaded; a file of another
format, or saved by other sklearn/numpy/skops or feature versions, is
refused with :class:`ModelVersionError`, because a silently re-interpreted
model scores garbage.
"""

import warnings
from pathlib import Path

import skops.io as sio
from sklearn.ensemble import IsolationForest

from callqual.detector.feature_ranges import CategoryShares, FeatureRanges
from callqual.detector.features import FEATURE_VERSION, CallFeatures
from callqual.detector.model import CallModel, versions

#: Bumped whenever what a model file holds changes; files of another format are refused.
MODEL_FORMAT = 2
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


def save(model: CallModel, path: Path) -> None:
    sio.dump(
        {
            "format": MODEL_FORMAT,
            "forest": model.forest,
            "ranges": model.ranges.as_dict(),
            "categories": {"names": model.categories.names, "shares": model.categories.shares},
            "rare_share": float(model.categories.rare_share),
            "margin": float(model.margin),
            "forest_limit": float(model.forest_limit),
            "feature_names": list(model.feature_names),
            "metadata": dict(model.metadata),
            "trained_calls": int(model.trained_calls),
            "trimmed_calls": int(model.trimmed_calls),
            "expected_fpr": float(model.expected_fpr),
        },
        path,
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
