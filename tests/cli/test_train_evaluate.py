"""train on one simulated day, evaluate on another seed, analyze with the model; version errors."""

import json
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.detector.model import load
from callqual.simulator import simulate, write_labels

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("days")
    train, test = d / "train.pcap", d / "test.pcap"
    simulate("day", train, seed=3, calls=60)
    write_labels(simulate("day", test, seed=4, calls=60), d / "test.labels.json")
    return train, test, d / "test.labels.json"


@pytest.fixture(scope="module")
def model(days: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.skops"
    assert main(["train", str(days[0]), "-o", str(path)]) == 0
    return path


def test_train_writes_a_loadable_model(model: Path) -> None:
    m = load(model)
    assert m.trained_calls > 40 and m.z_limit >= 3.5


def test_evaluate_scores_every_rule_and_the_model(
    days: tuple[Path, Path, Path], model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, test, labels = days
    code = main(["evaluate", str(test), "--labels", str(labels), "--model", str(model), "--format", "json"])
    assert code == 0
    ev = json.loads(capsys.readouterr().out)
    scores = {r["rule"]: r for r in ev["rules"]}
    assert "anomalous_call" in scores and "call_failed" in scores
    for rule in ("call_failed", "packet_loss", "no_media", "sip_scanner", "sip_flood", "toll_fraud"):
        assert scores[rule]["f1"] >= 0.95, scores[rule]
    m = ev["model"]
    assert m["anomalies"] >= 3 and m["detection_rate"] >= 0.6
    assert m["false_positive_rate"] <= 0.05


def test_evaluate_text_without_model(
    days: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, test, labels = days
    assert main(["evaluate", str(test), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "register_bruteforce" in out and "anomalous_call" not in out


def test_analyze_with_model_adds_anomalous_call_alerts(
    days: tuple[Path, Path, Path], model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    code = main(
        ["analyze", str(days[1]), "--model", str(model), "--format", "json", "--no-progress", "-o", str(out)]
    )
    assert code == 0
    alerts = json.loads(out.read_text())["alerts"]
    anomalous = [a for a in alerts if a["rule"] == "anomalous_call"]
    assert anomalous and all(a["details"]["score"] > 1.0 and a["evidence"] for a in anomalous)


def test_model_with_other_versions_is_refused(
    model: Path, tmp_path: Path, days: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    m = load(model)
    m.metadata = {**m.metadata, "feature_version": "999"}
    old = tmp_path / "old.skops"
    m.save(old)
    assert main(["analyze", str(days[1]), "--model", str(old), "--no-progress"]) == 3
    assert "feature_version 999 (file)" in capsys.readouterr().err
