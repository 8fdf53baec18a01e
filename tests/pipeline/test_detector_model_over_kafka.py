"""``callqual detector --model`` raises the model's ``anomalous_call`` alerts, as ``analyze --model``.

A small seeded model is trained on one simulated day (without the held-out
anomaly kinds); another day, which has them, goes through collector and
detector over the real broker, and its alerts must be those of
``callqual analyze --model`` on the same capture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.schemas import Alert
from callqual.simulator import simulate
from tests.pipeline.test_kafka_pipeline import _prefix, collector, finish, outputs

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def day_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("model-day")
    train, test, model = d / "train.pcap", d / "test.pcap", d / "m.skops"
    simulate("day", train, seed=3, calls=60, held_out=False)
    simulate("day", test, seed=4, calls=60)
    assert main(["train", str(train), "-o", str(model), "--seed", "0"]) == 0
    return test, model


def _detector(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "callqual", "detector", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_detector_with_model_raises_the_alerts_of_analyze(
    kafka_bootstrap: str, day_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    pcap, model = day_and_model
    report = tmp_path / "r.json"
    analyze = ["analyze", str(pcap), "--model", str(model), "--format", "json", "--no-progress"]
    assert main([*analyze, "-o", str(report)]) == 0
    expected = json.loads(report.read_text())["alerts"]
    expected_anomalous = {a["alert_id"] for a in expected if a["rule"] == "anomalous_call"}
    assert expected_anomalous, "the evaluation day must hold calls the model flags"

    prefix = _prefix()
    code, log = finish(collector(kafka_bootstrap, prefix, pcap))
    assert code == 0, log[-3:]
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix, "--partitions", "3"]
    det = _detector(*common, "--group-id", f"g{prefix}", "--exit-when-idle", "4", "--model", str(model))
    code, dlog = finish(det)
    assert code == 0, dlog[-3:]
    _, alerts = outputs(kafka_bootstrap, prefix)
    assert {a.alert_id for a in alerts if a.rule == "anomalous_call"} == expected_anomalous
    assert {a.alert_id for a in alerts} == {a["alert_id"] for a in expected}
    # Same scores and explanations, not only the same calls.
    by_id = {a["alert_id"]: Alert.model_validate(a) for a in expected}
    for alert in alerts:
        if alert.rule == "anomalous_call":
            assert alert == by_id[alert.alert_id]


def test_two_members_with_the_model_raise_the_alerts_of_analyze(
    kafka_bootstrap: str, day_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """Scale-out: each call is scored by the member owning its partition, same alerts as one."""
    pcap, model = day_and_model
    report = tmp_path / "r.json"
    analyze = ["analyze", str(pcap), "--model", str(model), "--format", "json", "--no-progress"]
    assert main([*analyze, "-o", str(report)]) == 0
    expected = {a["alert_id"] for a in json.loads(report.read_text())["alerts"]}
    prefix = _prefix()
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix, "--partitions", "3"]
    members = [
        _detector(*common, "--group-id", f"g{prefix}", "--exit-when-idle", "8", "--model", str(model))
        for _ in range(2)
    ]
    code, log = finish(collector(kafka_bootstrap, prefix, pcap, "--pace", "8000"))  # ~23 h in ~10 s
    assert code == 0, log[-3:]
    owned = []
    for m in members:
        code, dlog = finish(m)
        assert code == 0, dlog[-3:]
        owned.append(any(line["msg"] == "partitions assigned" and line["partitions"] for line in dlog))
    assert all(owned), "both members must have scored calls"
    _, alerts = outputs(kafka_bootstrap, prefix)
    assert {a.alert_id for a in alerts} == expected
    assert any(a.rule == "anomalous_call" for a in alerts)


def test_detector_model_from_the_environment(kafka_bootstrap: str, day_and_model: tuple[Path, Path]) -> None:
    """``CALLQUAL_DETECTOR_MODEL`` is the flag's variable: the same alerts without ``--model``."""
    pcap, model = day_and_model
    prefix = _prefix()
    code, log = finish(collector(kafka_bootstrap, prefix, pcap))
    assert code == 0, log[-3:]
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix, "--partitions", "3"]
    det = _detector(
        *common,
        "--group-id",
        f"g{prefix}",
        "--exit-when-idle",
        "4",
        env={"CALLQUAL_DETECTOR_MODEL": str(model)},
    )
    code, dlog = finish(det)
    assert code == 0, dlog[-3:]
    _, alerts = outputs(kafka_bootstrap, prefix)
    assert any(a.rule == "anomalous_call" for a in alerts)


@pytest.mark.parametrize("env", [False, True])
def test_detector_refuses_a_missing_model(tmp_path: Path, env: bool) -> None:
    """Refused before any Kafka connection, with analyze's message and exit code 3."""
    missing = tmp_path / "nope.skops"
    unreachable = ["--bootstrap-servers", "127.0.0.1:1", "--group-id", f"g{uuid.uuid4().hex[:8]}"]
    args = unreachable if env else [*unreachable, "--model", str(missing)]
    proc = _detector(*args, env={"CALLQUAL_DETECTOR_MODEL": str(missing)} if env else None)
    code, log = finish(proc, timeout=60)  # every stderr line JSON, the refusal too
    assert code == 3
    assert any(
        line["level"] == "error" and f"{missing}: no such model file" in str(line["msg"]) for line in log
    )


def test_detector_refuses_a_model_of_other_versions(day_and_model: tuple[Path, Path], tmp_path: Path) -> None:
    from callqual.detector.model_file import load, save

    m = load(day_and_model[1])
    m.metadata = {**m.metadata, "feature_version": "999"}
    old = tmp_path / "old.skops"
    save(m, old)
    code, log = finish(_detector("--bootstrap-servers", "127.0.0.1:1", "--model", str(old)), timeout=60)
    assert code == 3
    assert any("feature_version 999 (file)" in str(line["msg"]) for line in log)
