"""The learned model: range checks, category shares, calibration, contamination, explanations, files."""

import math
import random
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from callqual.cli.train import run_capture
from callqual.detector.call_context import CallContext
from callqual.detector.feature_ranges import CategoryShares, FeatureRanges
from callqual.detector.model import CallModel, ModelScorer
from callqual.detector.model_file import MODEL_FORMAT, ModelError, ModelVersionError, load, save
from callqual.detector.model_fit import fit
from tests.detector.rules.factories import (
    CALLEE_RTP,
    CALLER_RTP,
    both_streams,
    call_messages,
    ctx,
    record,
    stream,
)
from tests.shared_captures import PCAPS

_PHONES = ("Yealink SIP-T46U 108.86", "Polycom/6.4.3 VVX-450", "Grandstream GXP2170 1.0")


def _call(
    n: int,
    rng: random.Random,
    *,
    duration: float | None = None,
    rev_share: float = 1.0,
    hour: float | None = None,
    user_agent: str | None = None,
) -> CallContext:
    """A normal office call (business hours, 4-90 s, G.711 both ways); keywords make it odd."""
    duration = duration if duration is not None else min(90.0, max(4.0, rng.lognormvariate(2.9, 0.6)))
    pdd = rng.uniform(400.0, 2500.0)
    setup = pdd + rng.uniform(1000.0, 8000.0)
    t0 = 86_400.0 * (n + 1) + 3600.0 * (hour if hour is not None else rng.triangular(7.5, 19.0, 10.5))
    answer = t0 + setup / 1000
    rec = record(
        call_id=f"c{n}",
        start_ts=t0,
        answer_ts=answer,
        end_ts=answer + duration,
        post_dial_delay_ms=pdd,
        setup_time_ms=setup,
        duration_s=duration,
        messages=7,
        first_frame=n * 100 + 1,
        user_agent=user_agent or rng.choice(_PHONES),
    )
    packets = int(duration * 50)
    common = {"first_ts": answer, "last_ts": answer + duration, "call_id": f"c{n}", "mos": 4.4}
    fwd = stream(packets=packets, expected=packets, payload_bytes=packets * 160, **common)
    quiet = int(packets * rev_share)
    rev = stream(
        src=CALLEE_RTP,
        dst=CALLER_RTP,
        ssrc=0x5678,
        packets=quiet,
        expected=quiet,
        payload_bytes=quiet * 160,
        **common,
    )
    return ctx(rec=rec, streams=[fwd, rev])


#: Trees per forest in these tests: enough for stable scores, few enough to fit in a second.
TREES = 40


def _fit(calls: list[CallContext], **kw: int) -> CallModel:
    return fit(calls, n_estimators=TREES, **kw)


def _baseline(n: int = 200, seed: int = 1) -> list[CallContext]:
    rng = random.Random(seed)
    return [_call(i, rng) for i in range(n)]


def _matrix(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


# --- per-feature range checks -------------------------------------------------------------------


def test_a_value_far_outside_the_baseline_range_is_out_of_range_by_itself() -> None:
    rng = np.random.default_rng(0)
    durations = np.exp(rng.normal(2.9, 0.6, 300)).clip(4, 90)
    ranges = FeatureRanges.learn(durations.reshape(-1, 1), ["duration_s"])
    assert ranges.baseline_range(0) == pytest.approx((durations.min(), durations.max()))
    r = ranges.ratios(_matrix([[8 * 90.0], [60.0], [durations.max()], [float("nan")]]), margin=1.0)[:, 0]
    assert r[0] > 1.0, "eight times the longest call"
    assert r[1] < 1.0 and r[2] < 1.0, "inside what the baseline showed"
    assert r[3] == 0.0, "not applicable is never out of range"


def test_the_margin_is_learned_from_the_spread_and_scaled_by_the_calibrated_factor() -> None:
    wide = FeatureRanges.learn(_matrix([[float(v)] for v in np.linspace(10, 100, 50)]), ["fwd_packet_rate"])
    tight = FeatureRanges.learn(_matrix([[50.0 + 0.01 * (i % 3)] for i in range(50)]), ["fwd_packet_rate"])
    # Same value, same distance past the top: a tight baseline finds it odd, a wide one does not.
    assert tight.ratios(_matrix([[60.0]]), 1.0)[0, 0] > 1.0
    assert wide.ratios(_matrix([[110.0]]), 1.0)[0, 0] < 1.0
    # A constant feature still gets its resolution as spread (2 packets/s), not zero.
    assert tight.spread[0] == 2.0
    assert tight.ratios(_matrix([[51.5]]), 1.0)[0, 0] < 1.0 < tight.ratios(_matrix([[51.5]]), 0.5)[0, 0]


def test_direction_balance_constant_in_the_baseline_flags_a_tenth() -> None:
    ranges = FeatureRanges.learn(_matrix([[1.0]] * 100 + [[0.99]] * 20), ["direction_balance"])
    r = ranges.ratios(_matrix([[0.1], [0.97]]), 1.0)[:, 0]
    assert r[0] > 10.0 and r[1] < 1.0


def test_hour_is_circular_and_opened_where_the_baseline_is_quiet() -> None:
    office = FeatureRanges.learn(_matrix([[h] for h in np.linspace(8, 18, 60)]), ["hour"])
    assert office.hour_cut > 18 or office.hour_cut < 8
    r = office.ratios(_matrix([[3.0], [12.0]]), 0.5)[:, 0]
    assert r[0] > 1.0 > r[1]
    night_shift = [[h % 24] for h in np.linspace(21, 27, 60)]
    nights = FeatureRanges.learn(_matrix(night_shift), ["hour"])
    r = nights.ratios(_matrix([[23.5], [1.0], [12.0]]), 0.5)[:, 0]
    assert r[0] < 1.0 and r[1] < 1.0 and r[2] > 1.0


def test_a_baseline_of_a_few_hours_does_not_judge_the_hour() -> None:
    """A 2 h lab capture: another capture taken in the evening is not all 'odd hours'."""
    lab = FeatureRanges.learn(_matrix([[h] for h in np.linspace(14.0, 16.0, 60)]), ["hour"])
    assert lab.ratios(_matrix([[20.0], [3.0]]), 1.0).max() == 0.0
    assert lab.z(_matrix([[20.0]]))[0, 0] == 0.0


def test_a_feature_the_baseline_never_had_constrains_nothing() -> None:
    ranges = FeatureRanges.learn(_matrix([[float("nan")]] * 10), ["fwd_mos"])
    assert ranges.ratios(_matrix([[1.0]]), 1.0)[0, 0] == 0.0


def test_rare_categories_are_odd_common_ones_are_not() -> None:
    rows = [["pcmu"]] * 90 + [["g729"]] * 8 + [["g722"]] * 2
    shares = CategoryShares.learn(rows, ["codec"], rare_share=0.02)
    r = shares.ratios([["pcmu"], ["g729"], ["g722"], ["amr"]])[:, 0]
    assert r[0] < 1.0 and r[1] < 1.0
    assert r[2] > 1.0, "2 calls of 100: too few to be normal"
    assert r[3] > r[2]


# --- the model ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_baseline() -> tuple[ModelScorer, list[CallContext]]:
    calls = _baseline()
    return ModelScorer(_fit(calls)), calls


def test_fit_is_deterministic_with_a_fixed_random_state() -> None:
    calls = _baseline(120)
    a, b = _fit(calls, random_state=3), _fit(calls, random_state=3)
    assert (a.margin, a.forest_limit, a.expected_fpr) == (b.margin, b.forest_limit, b.expected_fpr)
    long_call = _call(999, random.Random(2), duration=700.0)
    assert a.verdict(long_call) == b.verdict(long_call)


def test_calibration_keeps_normal_calls_quiet(
    model_and_baseline: tuple[ModelScorer, list[CallContext]],
) -> None:
    scorer, _ = model_and_baseline
    assert scorer.model.expected_fpr <= 0.01
    flagged = [c for c in _baseline(200, seed=2) if scorer.score(c) is not None]
    assert len(flagged) <= 4  # 2 %


def test_single_feature_anomalies_are_flagged_and_explained(
    model_and_baseline: tuple[ModelScorer, list[CallContext]],
) -> None:
    scorer, baseline = model_and_baseline
    longest = max(c.record.duration_s or 0.0 for c in baseline)
    rng = random.Random(5)
    marathon = scorer.score(_call(900, rng, duration=8 * longest))
    assert marathon is not None and str(marathon.details["top_features"]).startswith("duration_s")
    shortest = min(c.record.duration_s or 0.0 for c in baseline)
    assert marathon.details["value_duration_s"] == f"{8 * longest:.0f}s"
    assert marathon.details["baseline_duration_s"] == f"{shortest:.3g}..{longest:.3g}s"
    assert "duration_s" in marathon.summary and "(baseline " in marathon.summary
    one_sided = scorer.score(_call(901, rng, rev_share=0.1))
    assert one_sided is not None and "direction_balance" in str(one_sided.details["explanation"])
    assert float(str(one_sided.details["value_direction_balance"])) == pytest.approx(0.1, abs=0.001)
    night = scorer.score(_call(902, rng, hour=3.0))
    assert night is not None and "hour" in str(night.details["top_features"])
    softphone = scorer.score(_call(903, rng, user_agent="Zoiper rv2.10"))
    assert softphone is not None and softphone.details["value_user_agent"] == "zoiper"
    assert "yealink" in str(softphone.details["baseline_user_agent"])


def test_scorer_alert_is_deterministic_and_cites_the_first_messages(
    model_and_baseline: tuple[ModelScorer, list[CallContext]],
) -> None:
    scorer, _ = model_and_baseline
    odd = _call(904, random.Random(6), duration=2000.0)
    alert = scorer.score(odd)
    assert alert is not None
    assert alert.rule == "anomalous_call" and alert.severity == "warning"
    assert alert.call_id == odd.record.call_id and alert.source_ip == odd.record.caller_ip
    assert isinstance(alert.details["score"], float) and alert.details["score"] > 1.0
    assert [e.frame for e in alert.evidence] == [m.frame for m in call_messages()[:5]]
    again = scorer.score(odd)
    assert again is not None and again.alert_id == alert.alert_id
    assert ModelScorer(scorer.model, threshold=1e9).score(odd) is None


def test_contaminated_baseline_still_flags_what_it_contains() -> None:
    """Four marathons slipped into a 'normal' day: left out as contamination, they stay anomalous."""
    rng = random.Random(7)
    calls = _baseline(200) + [_call(500 + i, rng, duration=900.0 + 50 * i) for i in range(4)]
    model = _fit(calls)
    assert model.trimmed_calls >= 4
    assert model.verdict(_call(600, rng, duration=800.0)).score > 1.0


def test_too_few_calls() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fit(_baseline(1))


# --- model files --------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = _fit(_baseline(80))
    path = tmp_path / "m.skops"
    save(model, path)
    loaded = load(path)
    odd = _call(905, random.Random(8), duration=1500.0)
    assert loaded.verdict(odd) == model.verdict(odd)
    assert loaded.metadata == model.metadata and loaded.trained_calls == model.trained_calls
    assert loaded.categories == model.categories and loaded.margin == model.margin


def test_version_mismatch_is_refused(tmp_path: Path) -> None:
    model = _fit(_baseline(50))
    path = tmp_path / "old.skops"
    model.metadata = {**model.metadata, "sklearn": "0.0.1", "feature_version": "0"}
    save(model, path)
    with pytest.raises(ModelVersionError, match=r"sklearn 0\.0\.1 \(file\)"):
        load(path)


def test_format_1_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """What the previous model (a log1p -> scaler -> forest pipeline) saved: refused, not misread."""
    pipeline = Pipeline([("log1p", FunctionTransformer(np.log1p)), ("scale", StandardScaler())])
    path = tmp_path / "v1.skops"
    sio.dump({"pipeline": pipeline, "forest_limit": 0.5, "z_limit": 4.0, "metadata": {}}, path)
    with pytest.raises(ModelVersionError, match=rf"format 1 \(file\) != {MODEL_FORMAT} \(running\); retrain"):
        load(path)


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.skops"
    sio.dump({"not": "a model"}, path)
    with pytest.raises(ModelError):
        load(path)
    (tmp_path / "junk.skops").write_bytes(b"junk")
    with pytest.raises(ModelError):
        load(tmp_path / "junk.skops")


def test_the_rules_default_call_is_scored(
    model_and_baseline: tuple[ModelScorer, list[CallContext]],
) -> None:
    """The rules' default call (other addresses, 1970 timestamps) is scored without error."""
    scorer, _ = model_and_baseline
    verdict = scorer.model.verdict(ctx(streams=both_streams()))
    assert verdict.score >= 0.0 and verdict.reasons


def test_calls_of_real_captures_are_scored_and_every_alert_explains_itself() -> None:
    """Every SIP capture of the shared set (small ones): odd real calls score finitely, alerts say why."""
    scorer = ModelScorer(_fit(_baseline(80)))
    rows = [line.split("\t") for line in (PCAPS / "MANIFEST.tsv").read_text().splitlines()[1:]]
    paths = [PCAPS / r[0] for r in rows if int(r[4]) < 1_500_000 and "Call-IDs=0," not in r[6]]
    assert len(paths) >= 10
    scored = 0
    for path in paths:
        contexts: list[CallContext] = []
        run_capture(path, contexts=contexts)
        for call in contexts:
            verdict = scorer.model.verdict(call)
            assert math.isfinite(verdict.score) and verdict.score >= 0.0, path
            alert = scorer.score(call)
            if alert is not None:
                assert verdict.reasons and str(alert.details["explanation"]), path
                first = verdict.reasons[0]
                assert alert.details[f"value_{first.feature}"] == first.value
            scored += 1
    assert scored >= 20
