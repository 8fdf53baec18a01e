"""The proof on a real broker: 1, 2 and 3 detector members give ``callqual analyze``'s alerts
and call categories.

The ``security`` scenario (scanner sweeps, brute force, a flood, toll fraud: per-source rules
whose probes carry distinct Call-IDs and spread over every partition) goes through the
collector onto 6 partitions, paced so the members work while it arrives. With 2 and 3
members, one is SIGKILLed mid-stream; the group rebalances and the survivors take its
partitions over in both stages. The set of alert ids equals the embedded run's, and so does
every call's category; a duplicate is only ever a republished id or call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from callqual.pipeline.embedded import analyze_file
from callqual.schemas import AnalysisReport
from callqual.simulator import simulate
from tests.detector.member_harness import categories
from tests.pipeline.test_kafka_pipeline import _callqual, finish, outputs

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def security(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnalysisReport]:
    path = tmp_path_factory.mktemp("scale") / "security.pcap"
    simulate("security", path, seed=7)
    return path, analyze_file(path)


def member(bootstrap: str, prefix: str, group: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _callqual(
            "detector",
            *("--bootstrap-servers", bootstrap, "--topic-prefix", prefix, "--group-id", group),
            *("--partitions", "6", "--exit-when-idle", "10"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # The group must notice a SIGKILLed member soon: a short session.
        env={**os.environ, "CALLQUAL_KAFKA_SESSION_TIMEOUT_MS": "6000"},
    )


@pytest.mark.parametrize("members", [1, 2, 3])
def test_n_members_with_a_kill_give_the_alerts_of_analyze(
    kafka_bootstrap: str, security: tuple[Path, AnalysisReport], members: int
) -> None:
    pcap, report = security
    prefix, group = f"s{uuid.uuid4().hex[:10]}.", f"g{uuid.uuid4().hex[:8]}"
    procs = [member(kafka_bootstrap, prefix, group) for _ in range(members)]
    col = subprocess.Popen(
        _callqual(
            "collector",
            *("--pcap", str(pcap), "--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix),
            *("--partitions", "6", "--pace", "150"),  # ~2,800 s of capture in ~19 s
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if members > 1:
            time.sleep(8)  # members joined; the capture is arriving
            assert col.poll() is None, "the capture ended before a member could be killed"
            procs[0].send_signal(signal.SIGKILL)
            procs[0].communicate(timeout=10)
        code, log = finish(col)
        assert code == 0 and log[-1]["lost"] == 0, log[-3:]
        survivors = procs[1:] if members > 1 else procs
        results = [finish(p, timeout=240) for p in survivors]
    finally:
        for p in [*procs, col]:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert [c for c, _ in results] == [0] * len(results), [lg[-2:] for _, lg in results]
    calls, alerts = outputs(kafka_bootstrap, prefix)
    expected = {a.alert_id for a in report.alerts}
    assert {a.alert_id for a in alerts} == expected
    assert {"sip_scanner", "register_bruteforce", "sip_flood", "toll_fraud"} <= {a.rule for a in alerts}
    # Each call's category too (``suspicious`` from every member's security alerts); a call
    # republished after the kill has the same one.
    expected_categories = {c.call_id: c.category for c in report.calls}
    assert list(expected_categories.values()).count("suspicious") > 100
    assert categories(calls) == expected_categories
