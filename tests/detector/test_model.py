"""The IsolationForest model: deterministic fit, scores and top features, alerts, skops round trip."""

import random
from pathlib import Path

import pytest
import skops.io as sio

from callqual.detector.call_context import CallContext
from callqual.detector.model import ModelError, ModelScorer, ModelVersionError, fit, load
from tests.detector.rules.factories import both_streams, call_messages, ctx, record


def _call(n: int, rng: random.Random, *, codec: str = "PCMU", start: float = 36_000.0) -> CallContext:
    duration = rng.uniform(20.0, 90.0)
    pdd = rng.uniform(500.0, 2500.0)
    setup = pdd + rng.uniform(1000.0, 6000.0)
    t0 = start + n * 60.0
    rec = record(
        call_id=f"c{n}",
        start_ts=t0,
        answer_ts=t0 + setup / 1000,
        end_ts=t0 + setup / 1000 + duration,
        post_dial_delay_ms=pdd,
        setup_time_ms=setup,
        duration_s=duration,
        messages=rng.randint(7, 9),
        first_frame=n * 100 + 1,
    )
    packets = int(duration * 50)
    streams = both_streams(
        packets=packets,
        expected=packets,
        payload_bytes=packets * 160,
        mean_jitter_ms=rng.uniform(0.5, 4.0),
        mos=round(rng.uniform(4.2, 4.4), 2),
        codec=codec,
        call_id=f"c{n}",
    )
    return ctx(rec=rec, streams=streams)


def _baseline(n: int = 200, seed: int = 1) -> list[CallContext]:
    rng = random.Random(seed)
    return [_call(i, rng) for i in range(n)]


def _odd() -> CallContext:
    """A 3 am call on a codec never seen in training."""
    return _call(0, random.Random(9), codec="G722", start=3 * 3600.0)


def test_fit_is_deterministic_with_a_fixed_random_state() -> None:
    calls = _baseline()
    a, b = fit(calls, random_state=3), fit(calls, random_state=3)
    assert a.forest_limit == b.forest_limit and a.z_limit == b.z_limit
    assert a.score_call(_odd()) == b.score_call(_odd())
    assert [a.score_call(c)[0] for c in calls[:20]] == [b.score_call(c)[0] for c in calls[:20]]


def test_odd_call_scores_above_one_and_names_its_features() -> None:
    model = fit(_baseline())
    score, top = model.score_call(_odd())
    assert score > 1.0
    names = [name for name, _ in top]
    assert "codec_g722" in names
    assert {"hour_sin", "hour_cos"} & set(names) or "codec_pcmu" in names
    normal_scores = [model.score_call(c)[0] for c in _baseline(100, seed=2)]
    assert sum(s > 1.0 for s in normal_scores) <= 5


def test_scorer_alert_is_deterministic_and_cites_the_first_messages() -> None:
    scorer = ModelScorer(fit(_baseline()))
    odd = _odd()
    alert = scorer.score(odd)
    assert alert is not None
    assert alert.rule == "anomalous_call" and alert.severity == "warning"
    assert alert.call_id == odd.record.call_id and alert.source_ip == odd.record.caller_ip
    assert isinstance(alert.details["score"], float) and alert.details["score"] > 1.0
    assert "codec_g722" in str(alert.details["top_features"])
    assert [e.frame for e in alert.evidence] == [m.frame for m in call_messages()[:5]]
    again = scorer.score(odd)
    assert again is not None and again.alert_id == alert.alert_id
    assert ModelScorer(scorer.model, threshold=1e9).score(odd) is None


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = fit(_baseline())
    path = tmp_path / "m.skops"
    model.save(path)
    loaded = load(path)
    assert loaded.score_call(_odd()) == model.score_call(_odd())
    assert loaded.metadata == model.metadata and loaded.trained_calls == model.trained_calls


def test_version_mismatch_is_refused(tmp_path: Path) -> None:
    model = fit(_baseline(50))
    path = tmp_path / "old.skops"
    model.metadata = {**model.metadata, "sklearn": "0.0.1", "feature_version": "0"}
    model.save(path)
    with pytest.raises(ModelVersionError, match=r"sklearn 0\.0\.1 \(file\)"):
        load(path)


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.skops"
    sio.dump({"not": "a model"}, path)
    with pytest.raises(ModelError):
        load(path)
    (tmp_path / "junk.skops").write_bytes(b"junk")
    with pytest.raises(ModelError):
        load(tmp_path / "junk.skops")


def test_too_few_calls() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fit(_baseline(1))
