"""``analyze --workers N``: the same report, byte for byte, as one process gives.

Collectors in N processes each keep the RTP statistics of their share of the
flows, and the detector gets the one-collector event sequence back by merging
tagged events (callqual/pipeline/sharded.py). Checked on every shared capture
(with and without RTP heuristics), on simulated load with many streams and
ticks, and on re-INVITEs and port reuse, where flows close and re-open
mid-capture; and the shares really split the work.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.media.flow_shard import FlowShard
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.sharded import ShardWorkerError, Tagged, _share_into, run_sharded
from callqual.simulator import simulate
from tests.collector.callcraft import CallCapture, rtp, sdp, sip
from tests.collector.test_media_rebinding import SCENARIOS, _call
from tests.shared_captures import PCAPS

SIP_A, SIP_B = ("10.0.0.1", 5060), ("10.0.0.2", 5060)
CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.suffix in {".pcap", ".pcapng"})


def _run(
    path: Path, workers: int, config: CollectorConfig, compact: bool = True
) -> tuple[bytes, EmbeddedPipeline]:
    """The JSON report of ``path`` with ``workers`` processes (1: no sharding), and the pipeline."""
    pipeline = EmbeddedPipeline(config, compact_outputs=compact)
    with open_capture(path) as capture:
        if workers == 1:
            pipeline.run(capture)
        else:
            run_sharded(pipeline, capture, config, workers)
        pipeline.finish()
        out = io.BytesIO()
        pipeline.write_json_report(out, str(path), capture.truncated, capture.errors)
    return out.getvalue(), pipeline


def _report(path: Path, workers: int, *, heuristic: bool = False, compact: bool = True) -> bytes:
    return _run(path, workers, CollectorConfig(heuristic_rtp=heuristic), compact)[0]


def _same_for_workers(path: Path, workers: tuple[int, ...], heuristic: bool = False) -> bytes:
    one = _report(path, 1, heuristic=heuristic)
    for n in workers:
        assert _report(path, n, heuristic=heuristic) == one, f"{path.name}: {n} workers"
    return one


def test_there_are_shared_captures() -> None:
    assert len(CAPTURES) >= 30


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("heuristic", [False, True], ids=["sdp", "heuristic"])
def test_shared_captures(path: Path, heuristic: bool) -> None:
    _same_for_workers(path, (2, 3), heuristic)


@pytest.fixture(scope="module")
def load_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sharded") / "load.pcap"
    simulate("load", path, calls=24, duration=30)  # several read chunks, interval reports, calls ending
    return path


def test_simulated_load(load_pcap: Path) -> None:
    report = _same_for_workers(load_pcap, (2, 3, 5))
    assert report.count(b'"ssrc"') >= 40


@pytest.mark.parametrize("scenario", ["day", "impaired"])
def test_simulated_scenarios(tmp_path: Path, scenario: str) -> None:
    path = tmp_path / f"{scenario}.pcap"
    simulate(scenario, path, seed=3, **({"duration": 20.0} if scenario == "impaired" else {}))
    _same_for_workers(path, (2,))


def test_the_full_report_model_too(load_pcap: Path) -> None:
    """Not only the compact JSON: the pydantic report (text output, --store) as well."""
    assert _report(load_pcap, 2, compact=False) == _report(load_pcap, 1, compact=False)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("in_flight", [0, 5], ids=["clean-cut", "in-flight"])
def test_rebinding_mid_capture(tmp_path: Path, name: str, in_flight: int) -> None:
    path = _call(tmp_path / f"{name}.pcap", SCENARIOS[name], in_flight)
    _same_for_workers(path, (2, 3))
    _same_for_workers(path, (2,), heuristic=True)


class _Recording(EmbeddedPipeline):
    """Records what reaches the detector: each event as JSON, and each tick."""

    def __init__(self, config: CollectorConfig) -> None:
        self.seen: list[str] = []
        super().__init__(config, on_event=lambda e: self.seen.append(e.model_dump_json()))

    def on_tick(self, now: float) -> None:
        self.seen.append("tick")
        super().on_tick(now)


def _sequence(path: Path, workers: int, heuristic: bool = False) -> list[str]:
    config = CollectorConfig(heuristic_rtp=heuristic)
    pipeline = _Recording(config)
    with open_capture(path) as capture:
        if workers == 1:
            pipeline.run(capture)
        else:
            run_sharded(pipeline, capture, config, workers)
    pipeline.finish()
    return pipeline.seen


def test_the_detector_sees_one_collectors_sequence(load_pcap: Path) -> None:
    """The report could hide a reordering; the detector's input, event by event and tick by tick, cannot."""
    one = _sequence(load_pcap, 1)
    assert one.count("tick") >= 25
    assert sum('"kind":"rtp_stream"' in e for e in one) >= 100
    for workers in (2, 3):
        assert _sequence(load_pcap, workers) == one


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("heuristic", [False, True], ids=["sdp", "heuristic"])
def test_the_same_sequence_through_rebinding(tmp_path: Path, name: str, heuristic: bool) -> None:
    path = _call(tmp_path / f"{name}.pcap", SCENARIOS[name], 5)
    assert _sequence(path, 2, heuristic) == _sequence(path, 1, heuristic)


def _port_reuse_on_a_tick(path: Path) -> Path:
    """Call 2 takes call 1's media ports; its first packet, after a silent second, is a tick frame.

    That frame's own work (closing call 1's streams on the re-bound flows) comes
    after the tick's: a worker owning one of those flows must not put them first.
    """
    capture = CallCapture()
    alice, bob = ("10.0.0.1", 4000), ("10.0.0.2", 5000)
    invite, ok = "INVITE sip:bob@10.0.0.2 SIP/2.0", "SIP/2.0 200 OK"
    for n, start in ((1, 0.0), (2, 1.2)):
        offer = sdp("10.0.0.1", [("audio", 4000, "RTP/AVP", "0")], session=n)
        answer = sdp("10.0.0.2", [("audio", 5000, "RTP/AVP", "0")], session=n)
        capture.add(start, SIP_A, SIP_B, sip(invite, f"reuse-{n}", "1 INVITE", body=offer))
        capture.add(start + 0.01, SIP_B, SIP_A, sip(ok, f"reuse-{n}", "1 INVITE", to_tag="b", body=answer))
    for i in range(50):  # call 1: 0.05-1.03 s; call 2: from 3.0 s
        for n, t in ((1, 0.05 + i * 0.02), (2, 3.0 + i * 0.02)):
            capture.add(t, alice, bob, rtp(100 * n + i, 160 * i, 10 + n, bytes(160)))
            capture.add(t + 0.001, bob, alice, rtp(500 * n + i, 160 * i, 20 + n, bytes(160)))
    return capture.write(path)


def test_what_a_tick_frame_does_comes_after_the_tick(tmp_path: Path) -> None:
    path = _port_reuse_on_a_tick(tmp_path / "reuse.pcap")
    one = _sequence(path, 1)
    closing = [i for i, e in enumerate(one) if '"final":true' in e and '"call_id":"reuse-1"' in e]
    assert len(closing) == 2 and one[closing[0] - 1] == "tick"  # closed by call 2's first packet
    owners = {FlowShard(i, 3).owns("10.0.0.1", 4000, "10.0.0.2", 5000) for i in (1, 2)}
    owners |= {FlowShard(i, 3).owns("10.0.0.2", 5000, "10.0.0.1", 4000) for i in (1, 2)}
    assert True in owners  # a worker, not share 0, owns one of the flows
    assert _sequence(path, 3) == one


def _stream_keys(path: Path, shard: FlowShard) -> list[tuple[object, ...]]:
    out: list[Tagged] = []
    with open_capture(path) as capture:
        _share_into(capture, CollectorConfig(), shard, out, lambda _watermark: None)
    return [
        (e.src_ip, e.src_port, e.dst_ip, e.dst_port, e.ssrc)
        for _tag, e in out
        if e is not None and e.kind == "rtp_stream" and e.final
    ]


def test_the_shares_split_the_streams(load_pcap: Path) -> None:
    whole = _stream_keys(load_pcap, FlowShard(0, 1))
    first, second = _stream_keys(load_pcap, FlowShard(0, 2)), _stream_keys(load_pcap, FlowShard(1, 2))
    assert first and second
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(whole)


def test_a_failing_worker_is_an_error_not_a_hang(tmp_path: Path, load_pcap: Path) -> None:
    path = tmp_path / "gone.pcap"
    path.write_bytes(load_pcap.read_bytes())
    config = CollectorConfig()
    with open_capture(path) as capture:
        path.unlink()  # the worker opens it by name: it cannot
        with pytest.raises(ShardWorkerError, match="FileNotFoundError"):
            run_sharded(EmbeddedPipeline(config), capture, config, 2)


def test_analyze_workers_flag(load_pcap: Path, tmp_path: Path) -> None:
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        cmd = [sys.executable, "-m", "callqual", "analyze", str(load_pcap), "--format", "json"]
        proc = subprocess.run(
            [*cmd, "--workers", workers, "-o", str(out)], capture_output=True, timeout=300, check=False
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    bad = subprocess.run(
        [sys.executable, "-m", "callqual", "analyze", str(load_pcap), "--workers", "0"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert b"between 1 and 64" in bad.stderr
    assert b"Traceback" not in bad.stderr


def test_a_truncated_capture_is_reported_alike(load_pcap: Path, tmp_path: Path) -> None:
    """Exit 4 and the same report: the truncation is the file's, whatever the number of processes."""
    cut = tmp_path / "cut.pcap"
    whole = load_pcap.read_bytes()
    cut.write_bytes(whole[: len(whole) * 2 // 3 + 7])
    outputs = []
    for workers in ("1", "3"):
        out = tmp_path / f"cut{workers}.json"
        cmd = [sys.executable, "-m", "callqual", "analyze", str(cut), "--format", "json", "-o", str(out)]
        proc = subprocess.run([*cmd, "--workers", workers], capture_output=True, timeout=300, check=False)
        assert proc.returncode == 4, proc.stderr.decode(errors="replace")
        assert b"Traceback" not in proc.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert b'"truncated": true' in outputs[0]


FlowTimes = dict[tuple[str, int, str, int], tuple[float, float, float, list[int]]]


def _flow_times_at_ticks(path: Path, shard: FlowShard) -> tuple[list[FlowTimes], int]:
    """At each tick of one share: every flow's last packet, last report (tick, last packet) and SSRCs."""
    seen: list[FlowTimes] = []

    def on_tick(_now: float) -> None:
        seen.append(
            {
                key: (f.last_ts, f.reported_ts, f.reported_last_ts, sorted({*f.streams, *f.ghosts}))
                for key, f in collector.flow_table.flows.items()
            }
        )

    collector = Collector(lambda _event: None, CollectorConfig(), on_tick=on_tick)
    collector.shard = shard
    with open_capture(path) as capture:
        collector.run(capture)
    return seen, collector.counters["rtp.quiet_probe_reports"]


@pytest.mark.parametrize("name", ["load", "heplify/rtp_rtcp_sip_ipv4_udp.pcap"])
def test_every_share_schedules_like_one_collector(load_pcap: Path, name: str) -> None:
    """The quiet probe, reports and closing decide per call from all its flows: each share tracks them all.

    A share that timed only its own flows probed calls at other moments than one
    collector, so the streams were drained at other packets and their jitter
    rounded differently (the reports differed in the last digits).
    """
    path = load_pcap if name == "load" else PCAPS / name
    one, probed = _flow_times_at_ticks(path, FlowShard(0, 1))
    assert len(one) >= 10
    assert probed > 0  # the probe did report between interval ticks
    for count in (2, 3):
        for index in range(count):
            assert _flow_times_at_ticks(path, FlowShard(index, count))[0] == one, f"share {index} of {count}"


def test_a_full_stream_table_is_reported_alike(load_pcap: Path) -> None:
    """max_streams counts every share's streams (the others' as SSRCs), as one collector counts."""
    config = CollectorConfig(max_streams=7)
    reports = []
    for workers in (1, 2, 3):
        report, pipeline = _run(load_pcap, workers, config, compact=False)
        totals = pipeline.collector_totals or CollectorTotals.of(pipeline.collector)
        reports.append((report, totals.dropped["rtp.stream_table_full"]))
    assert reports[0][1] > 0
    assert reports[1] == reports[0]
    assert reports[2] == reports[0]
