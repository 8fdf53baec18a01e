"""The day's model-anomaly kinds: labelled by kind, shaped as described, and invisible to every rule.

Only the anomaly calls of a small day (plus a few normal calls) are
captured and analysed, through the same engine and pipeline as a full day.
"""

import random
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.cli.train import run_capture
from callqual.detector.call_context import CallContext
from callqual.detector.rules.media import stream_direction
from callqual.simulator.anomalies import ANOMALY_KINDS, DAY_MAX_TALK_S, HELD_OUT, held_out_kinds
from callqual.simulator.engine import write_capture
from callqual.simulator.labels import SimulationLabels, read_labels
from callqual.simulator.media import talkspurts
from callqual.simulator.scenarios import SCENARIOS
from callqual.simulator.spec import ScenarioCalls, call_faults

SEED = 12


def _day(*, held_out: bool = True, calls: int = 40) -> ScenarioCalls:
    day = SCENARIOS["day"]
    return day.build(random.Random(f"day/{SEED}"), day.resolve({"calls": calls, "held_out": held_out}))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulationLabels, dict[str, CallContext]]:
    specs = _day()
    odd = [c for c in specs.calls if c.anomaly_kind in ANOMALY_KINDS]
    picked = ScenarioCalls(calls=odd + specs.calls[:5])
    path = tmp_path_factory.mktemp("kinds") / "kinds.pcap"
    labels = write_capture(picked, path, base=f"day/{SEED}", scenario="day", seed=SEED, epoch=0)
    contexts: list[CallContext] = []
    report = run_capture(path, contexts=contexts)
    assert report is not None
    assert not [a for a in report.alerts], [a.summary for a in report.alerts]
    return labels, {c.record.call_id: c for c in contexts}


def test_every_kind_is_labelled_and_held_out_kinds_can_be_left_out() -> None:
    specs = _day()
    for name in ANOMALY_KINDS:
        kind_calls = [c for c in specs.calls if c.anomaly_kind == name]
        assert len(kind_calls) == 3, name
        assert all("model_anomaly" in call_faults(c) for c in kind_calls)
    assert set(held_out_kinds()) == {"marathon", "one_sided_talkspurts", "reinvite_churn", "bloated_invite"}
    assert not any(HELD_OUT[k] for k in ("long_ringing", "softphone_user_agent", "night_marathon_g722"))
    training = _day(held_out=False)
    assert not [c for c in training.calls if c.anomaly_kind in held_out_kinds()]
    kept = [c for c in specs.calls if c.anomaly_kind not in held_out_kinds()]
    assert training.calls == kept


def _of_kind(analysed: tuple[SimulationLabels, dict[str, CallContext]], kind: str) -> list[CallContext]:
    labels, contexts = analysed
    found = [contexts[c.call_id] for c in labels.calls if c.anomaly_kind == kind]
    assert len(found) == 3
    return found


def _packets(ctx: CallContext) -> dict[str, int]:
    out = {"caller_to_callee": 0, "callee_to_caller": 0}
    for s in ctx.streams:
        direction = stream_direction(ctx, s)
        assert direction is not None
        out[direction] += s.packets
    return out


def test_marathon_calls_last_eight_times_the_longest_normal_call(
    analysed: tuple[SimulationLabels, dict[str, CallContext]],
) -> None:
    for ctx in _of_kind(analysed, "marathon"):
        assert (ctx.record.duration_s or 0) >= 8 * DAY_MAX_TALK_S


def test_one_sided_talkspurts_thin_one_direction_without_loss(
    analysed: tuple[SimulationLabels, dict[str, CallContext]],
) -> None:
    for ctx in _of_kind(analysed, "one_sided_talkspurts"):
        packets = _packets(ctx)
        ratio = packets["callee_to_caller"] / packets["caller_to_callee"]
        assert 0.06 <= ratio <= 0.25, packets
        assert all(s.lost == 0 and s.mean_jitter_ms < 1.0 for s in ctx.streams)


def test_reinvite_churn_and_bloated_invites_show_in_the_signalling(
    analysed: tuple[SimulationLabels, dict[str, CallContext]],
) -> None:
    for ctx in _of_kind(analysed, "reinvite_churn"):
        assert ctx.record.requests["INVITE"] >= 13 and ctx.record.retransmissions == 0
        packets = _packets(ctx)
        assert min(packets.values()) > 0.9 * max(packets.values())
    for ctx in _of_kind(analysed, "bloated_invite"):
        assert max(m.size for m in ctx.messages) > 4000


def test_tuning_kinds_are_answered_calls_with_their_oddity(
    analysed: tuple[SimulationLabels, dict[str, CallContext]],
) -> None:
    for ctx in _of_kind(analysed, "long_ringing"):
        assert ctx.record.answer_ts is not None and (ctx.record.setup_time_ms or 0) > 30_000
    for ctx in _of_kind(analysed, "softphone_user_agent"):
        assert ctx.record.user_agent is not None and "Yealink" not in ctx.record.user_agent


def test_talkspurts_fill_their_share_of_the_slots_in_order() -> None:
    slots = talkspurts(5000, 0.1, random.Random(1))
    assert 0.07 <= len(slots) / 5000 <= 0.13
    assert slots == tuple(sorted(set(slots))) and slots[-1] < 5000


def test_simulate_cli_makes_a_training_day_without_held_out_kinds(tmp_path: Path) -> None:
    out = tmp_path / "train.pcap"
    assert (
        main(
            ["simulate", "--scenario", "day", "--calls", "4", "--seed", "5", "--no-held-out", "-o", str(out)]
        )
        == 0
    )
    labels = read_labels(tmp_path / "train.labels.json")
    kinds = {c.anomaly_kind for c in labels.calls if c.anomaly_kind}
    assert kinds and not kinds & set(held_out_kinds())
    assert {"long_ringing", "softphone_user_agent"} <= kinds
    assert labels.options["held_out"] is False
