"""Fitting the learned model on a baseline: contamination first, then out-of-fold calibration.

A baseline capture is never perfectly clean: the calls most unlike the
rest (robust |z| over ``TRIM_Z`` or a rare category, at most
``contamination`` of them) are left out of everything, so a few odd calls
in a "normal" day do not teach the model that odd is normal. The limits
are then set from the baseline alone for a false-positive budget: each
fifth of it is scored by ranges and a forest fitted on the other four
fifths, and the smallest range margin and the forest limit that keep those
out-of-fold false positives within their share of the budget are kept.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from callqual.detector.call_context import CallContext
from callqual.detector.feature_ranges import CategoryShares, FeatureRanges, Matrix
from callqual.detector.features import CallFeatures
from callqual.detector.model import CallModel, features_of, row_max

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


def _forest(z: Matrix, random_state: int, n_estimators: int) -> IsolationForest:
    # score_samples is used with a limit of our own, so the forest's contamination setting plays no part.
    return IsolationForest(n_estimators=n_estimators, random_state=random_state).fit(z)


def _contamination(
    x: Matrix, cats: list[list[str]], contamination: float, rare_share: float
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Baseline calls to leave out: beyond ``TRIM_Z`` robust sigmas or of a rare category, oddest first."""
    ranges = FeatureRanges.learn(x, CallFeatures.names())
    odd = row_max(np.abs(ranges.z(x))) / TRIM_Z
    shares = CategoryShares.learn(cats, CallFeatures.category_names(), rare_share)
    odd = np.maximum(odd, row_max(shares.ratios(cats)))
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
        category[held] = row_max(shares.ratios([c for c, h in zip(cats, held, strict=True) if h]))
        for m, margin in enumerate(MARGINS):
            per_margin[held, m] = row_max(ranges.ratios(x[held], margin))
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
    x, cats = features_of(contexts)
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
