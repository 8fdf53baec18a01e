"""train on one simulated day, evaluate on another seed, analyze with the model; version errors.

The training day is made without the held-out anomaly kinds (``--no-held-out``):
nothing is fitted to them, and the evaluation day (another seed) has them all.
"""

import json
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.cli.text_report import render
from callqual.detector.model_file import load, save
from callqual.schemas import AnalysisReport
from callqual.simulator import simulate, write_labels
from callqual.simulator.anomalies import held_out_kinds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("days")
    train, test = d / "train.pcap", d / "test.pcap"
    simulate("day", train, seed=3, calls=60, held_out=False)
    write_labels(simulate("day", test, seed=4, calls=60), d / "test.labels.json")
    return train, test, d / "test.labels.json"


@pytest.fixture(scope="module")
def model(days: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.skops"
    assert main(["train", str(days[0]), "-o", str(path)]) == 0
    return path


def test_train_writes_a_loadable_model(model: Path) -> None:
    m = load(model)
    assert m.trained_calls > 40 and m.margin > 0 and 0 < m.forest_limit < 1
    assert m.expected_fpr <= 0.05


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
    kinds = {k["kind"]: k for k in m["kinds"]}
    held_out = {name for name, k in kinds.items() if k["held_out"]}
    assert held_out == set(held_out_kinds())
    # The targets: >= 90 % of the held-out kinds at <= 2 % of normal calls (about 1 of 58 here).
    assert m["held_out_anomalies"] == 12 and m["held_out_detection_rate"] >= 0.9
    assert m["normal_calls"] >= 50 and m["false_positive_rate"] <= 0.02
    for name in held_out:
        assert kinds[name]["detected"] >= 2, kinds[name]


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
    text = render(AnalysisReport.model_validate_json(out.read_text()))
    assert any("anomalous_call" in line and "(baseline " in line for line in text.splitlines())
    anomalous = [a for a in alerts if a["rule"] == "anomalous_call"]
    assert anomalous and all(a["details"]["score"] > 1.0 and a["evidence"] for a in anomalous)
    # Every alert says which features made it, with the value and the range the baseline showed.
    for a in anomalous:
        first = a["details"]["top_features"].split(",")[0]
        assert f"value_{first}" in a["details"] and f"baseline_{first}" in a["details"]
        assert f"{first} {a['details'][f'value_{first}']} (baseline " in a["summary"]


def test_model_with_other_versions_is_refused(
    model: Path, tmp_path: Path, days: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    m = load(model)
    m.metadata = {**m.metadata, "feature_version": "999"}
    old = tmp_path / "old.skops"
    save(m, old)
    assert main(["analyze", str(days[1]), "--model", str(old), "--no-progress"]) == 3
    assert "feature_version 999 (file)" in capsys.readouterr().err
