"""Two stages, one answer: call-stage and source-stage members over 6 in-process partitions.

The collector service publishes the ``security`` scenario onto 6 ``events`` partitions. N
call-stage members share them (each reads its own in a random fetch interleaving), forwarding
observations to 6 ``sources`` partitions; M source-stage members share those. Whatever N and M,
and with a member of either stage killed mid-stream and its partitions taken over, the set of
alert ids is ``callqual analyze``'s (duplicates only with equal ids).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callqual.detector.rules.settings import RuleSettings
from callqual.pipeline.embedded import analyze_file
from callqual.schemas import AnalysisReport
from callqual.simulator import simulate
from callqual.transport import Message
from callqual.transport.ordering import Marker
from tests.detector.member_harness import LAST_CALLS, categories, publish_capture, two_stage_alert_ids

PARTITIONS = 6


@pytest.fixture(scope="module")
def security(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, list[Message]], AnalysisReport]:
    pcap = tmp_path_factory.mktemp("stages") / "security.pcap"
    simulate("security", pcap, seed=7)
    return publish_capture(pcap, partitions=PARTITIONS), analyze_file(pcap)


@pytest.mark.parametrize(("calls", "sources", "kill"), [(1, 1, False), (2, 3, False), (3, 2, True)])
def test_any_number_of_members_gives_the_alerts_of_analyze(
    security: tuple[dict[int, list[Message]], AnalysisReport], calls: int, sources: int, kill: bool
) -> None:
    log, report = security
    published = two_stage_alert_ids(log, calls, sources, kill=kill)
    ids = set(published)
    expected = {a.alert_id for a in report.alerts}
    assert {a.rule for a in report.alerts} >= {
        "sip_scanner",
        "register_bruteforce",
        "sip_flood",
        "toll_fraud",
    }
    assert ids == expected  # republished alerts (a mid-call alert refined at the end) keep their id
    expected_categories = {c.call_id: c.category for c in report.calls}
    assert list(expected_categories.values()).count("suspicious") > 100
    assert categories(LAST_CALLS) == expected_categories


def test_the_source_stage_commits_no_later_than_its_horizon_of_capture_time() -> None:
    from callqual.detector.stages.source_stage import SourceStage
    from callqual.schemas import MalformedSipEvent

    stage = SourceStage(RuleSettings(), partitions=1, origins=1, emit=lambda a: None, horizon_s=30.0)
    stage.assign([0])
    for i in range(100):
        event = MalformedSipEvent(
            frame=i, ts=float(i), src_ip="192.0.2.9", src_port=5060, dst_ip="192.0.2.1", dst_port=5060,
            transport="udp", reason="sip.bad_start_line", excerpt="XYZ", size=3,
        )  # fmt: skip
        stage.push(0, 0, i, (float(i), float(i)), event)
    stage.push(0, 0, 50, (50.0, 50.0), event)  # a call-stage replay: not after the lane's last, dropped
    stage.push_marker(0, 0, 101, Marker.WATERMARK, (200.0, 200.0))
    assert stage.apply_ready() == 100
    assert stage.counters["replayed"] == 1
    assert stage.commit_positions() == {0: 69}  # clock 69 .. 99 is within 30 s of 99


def test_a_mixed_day_gives_the_alerts_of_analyze_over_both_stages(tmp_path: Path) -> None:
    pcap = tmp_path / "day.pcap"
    simulate("day", pcap, seed=5, calls=80)
    report = analyze_file(pcap)
    rules = {a.rule for a in report.alerts}
    assert {"sip_scanner", "malformed_sip", "toll_fraud", "call_failed"} <= rules
    published = two_stage_alert_ids(publish_capture(pcap, partitions=PARTITIONS), 2, 3, kill=True)
    assert set(published) == {a.alert_id for a in report.alerts}
    assert categories(LAST_CALLS) == {c.call_id: c.category for c in report.calls}


def test_an_observation_reaching_a_member_on_two_partitions_is_applied_once_and_held_by_both() -> None:
    from callqual.detector.stages.source_stage import SourceStage
    from callqual.schemas import MalformedSipEvent

    stage = SourceStage(RuleSettings(), partitions=2, origins=1, emit=lambda a: None, horizon_s=30.0)
    stage.assign([0, 1])
    event = MalformedSipEvent(
        frame=1, ts=10.0, src_ip="192.0.2.9", src_port=5060, dst_ip="192.0.2.1", dst_port=5060,
        transport="udp", reason="sip.bad_start_line", excerpt="XYZ", size=3,
    )  # fmt: skip
    stage.push(0, 0, 0, (10.0, 1.0), event)
    stage.push(1, 0, 5, (10.0, 1.0), event)  # the same observation, for a key of partition 1
    for p, offset in ((0, 1), (1, 6)):
        stage.push_marker(p, 0, offset, Marker.WATERMARK, (20.0, 9.0))
    assert stage.apply_ready() == 1
    assert stage.counters["same_observation"] == 1
    # A successor taking over either partition alone must replay the observation.
    assert stage.commit_positions() == {0: 0, 1: 5}
