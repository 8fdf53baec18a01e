"""The demo capture, read back by tshark: everything the labels claim must be visible on the wire."""

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from callqual.simulator import SimulationLabels, read_labels, simulate, write_labels
from tests.tshark_reference import fields, requires_tshark, rtp_streams

pytestmark = [requires_tshark, pytest.mark.tshark]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationLabels]:
    path = tmp_path_factory.mktemp("demo") / "demo.pcap"
    return path, simulate("demo", path, seed=7)


def test_no_malformed_packets_and_no_expert_errors(demo: tuple[Path, SimulationLabels]) -> None:
    path, _ = demo
    bad = fields(path, "_ws.malformed || _ws.expert.severity >= 8388608", ["frame.number"])
    assert bad == []


def test_ip_header_checksums_are_valid(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    good = fields(path, "ip.checksum.status == 1", ["frame.number"], ["-o", "ip.check_checksum:TRUE"])
    assert len(good) == labels.packets


def test_frames_are_in_time_order_and_counts_match(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    times = [float(row[0]) for row in fields(path, "frame", ["frame.time_epoch"])]
    assert len(times) == labels.packets == labels.sip_packets + labels.rtp_packets + labels.rtcp_packets
    assert times == sorted(times)
    assert 55.0 < times[-1] - times[0] < 120.0
    assert int(times[0]) >= labels.epoch
    assert path.stat().st_size < 3_000_000


def test_every_rtp_stream_and_its_loss_match_the_labels(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    seen = rtp_streams(path)
    expected = {
        (s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): s for call in labels.calls for s in call.streams
    }
    assert set(seen) == set(expected)
    for key, stream in expected.items():
        assert seen[key].packets == stream.captured, key
        assert seen[key].lost == stream.lost, key
    lossy = [s for s in expected.values() if s.lost]
    assert len(lossy) >= 4  # random and burst loss, both directions


def test_jitter_labels_match_tshark(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    seen = rtp_streams(path)
    for call in labels.calls:
        if call.dtmf:  # telephone-event packets have their own nominal time in tshark's jitter
            continue
        for s in call.streams:
            row = seen[(s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc)]
            assert row.mean_jitter_ms == pytest.approx(s.jitter_mean_ms, abs=0.002)
            assert row.max_jitter_ms == pytest.approx(s.jitter_max_ms, abs=0.002)
    (heavy,) = [c for c in labels.calls if "jitter" in c.faults]
    assert heavy.category == "poor_quality"
    assert all(s.jitter_mean_ms > 30.0 for s in heavy.streams)


def test_rtp_count_matches_and_rtcp_is_decoded(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    assert len(fields(path, "rtp", ["frame.number"])) == labels.rtp_packets
    assert len(fields(path, "rtcp", ["frame.number"])) == labels.rtcp_packets > 0
    rtt = fields(
        path, "rtcp.roundtrip-delay", ["rtcp.roundtrip-delay"], ["-o", "rtcp.show_roundtrip_calculation:TRUE"]
    )
    assert rtt and all(0 < int(row[0]) < 100 for row in rtt)


def test_sip_call_ids_and_final_statuses_match_the_labels(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    rows = fields(path, "sip", ["sip.Call-ID", "sip.Status-Code", "sip.CSeq.method", "sip.CSeq.seq"])
    finals: dict[str, tuple[int, int]] = {}
    call_ids = set()
    for call_id, status, method, seq in rows:
        call_ids.add(call_id)
        if status and int(status) >= 200 and method in ("INVITE", "REGISTER", "OPTIONS"):
            previous = finals.get(call_id)
            if previous is None or int(seq) >= previous[0]:
                finals[call_id] = (int(seq), int(status))
    by_id = labels.by_call_id()
    assert call_ids == set(by_id)
    for call_id, label in by_id.items():
        assert finals[call_id][1] == label.final_status, label.description


def test_demo_covers_every_category_and_failure_class(demo: tuple[Path, SimulationLabels]) -> None:
    _, labels = demo
    categories = Counter(call.category for call in labels.calls)
    assert set(categories) == {
        "ok",
        "poor_quality",
        "one_way",
        "no_media",
        "failed_user",
        "failed_network",
        "failed_auth",
        "suspicious",
    }
    statuses = {call.final_status for call in labels.calls if call.method == "INVITE"}
    assert {200, 401, 403, 404, 407, 480, 486, 487, 488, 503, 603} <= statuses
    faults = {fault for call in labels.calls for fault in call.faults}
    assert {
        "random_loss",
        "burst_loss",
        "jitter",
        "one_way_audio",
        "no_media",
        "long_post_dial_delay",
        "sip_retransmissions",
        "call_failed",
        "ip_fragmentation",
    } <= faults
    codecs = {call.codec for call in labels.calls if call.category == "ok"}
    assert {"PCMU", "PCMA", "G729", "opus"} <= codecs
    # Calls overlap: some call starts before the previous one has ended.
    invites = sorted((c.start_ts, c.end_ts) for c in labels.calls if c.method == "INVITE")
    assert any(b[0] < a[1] for a, b in itertools.pairwise(invites))


def test_invite_retransmissions_follow_timer_a(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    (call,) = [c for c in labels.calls if "sip_retransmissions" in c.faults]
    rows = fields(
        path,
        f'sip.Method == "INVITE" && sip.Call-ID == "{call.call_id}"',
        ["frame.time_epoch", "sip.Via.branch", "sip.CSeq", "sip.resend"],
    )
    assert len(rows) == 3
    assert len({(row[1], row[2]) for row in rows}) == 1
    gaps = [round(float(b[0]) - float(a[0]), 3) for a, b in itertools.pairwise(rows)]
    assert gaps == [0.5, 1.0]
    assert [row[3] for row in rows] == ["0", "1", "1"]


def test_post_dial_delay_and_cancel_flow(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    (slow,) = [c for c in labels.calls if "long_post_dial_delay" in c.faults]
    rows = fields(
        path, f'sip.Call-ID == "{slow.call_id}"', ["frame.time_epoch", "sip.Method", "sip.Status-Code"]
    )
    invite = next(float(r[0]) for r in rows if r[1] == "INVITE")
    ringing = next(float(r[0]) for r in rows if r[2] == "180")
    assert ringing - invite == pytest.approx(8.0, abs=0.001)

    (cancelled,) = [c for c in labels.calls if c.final_status == 487]
    flow = [
        r[0] or r[1]
        for r in fields(path, f'sip.Call-ID == "{cancelled.call_id}"', ["sip.Method", "sip.Status-Code"])
    ]
    assert flow == ["INVITE", "100", "180", "CANCEL", "200", "487", "ACK"]


def test_large_invite_is_fragmented_and_reassembled(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    (call,) = [c for c in labels.calls if "ip_fragmentation" in c.faults]
    assert fields(path, "ip.flags.mf == 1", ["frame.number"])
    rows = fields(path, f'sip.Method == "INVITE" && sip.Call-ID == "{call.call_id}"', ["ip.fragment.count"])
    assert rows and int(rows[0][0]) >= 2


def test_dtmf_digits_are_rfc4733_events(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    (call,) = [c for c in labels.calls if c.dtmf]
    rows = fields(path, "rtpevent && rtpevent.end_of_event == 0", ["rtpevent.event_id", "rtp.marker"])
    starts = [int(event) for event, marker in rows if marker in ("1", "True")]
    names = {10: "*", 11: "#"}
    assert "".join(names.get(e, str(e)) for e in starts) == call.dtmf


def test_labels_round_trip_through_json(demo: tuple[Path, SimulationLabels], tmp_path: Path) -> None:
    _, labels = demo
    write_labels(labels, tmp_path / "labels.json")
    assert read_labels(tmp_path / "labels.json") == labels
    per_call = defaultdict(list)
    for call in labels.calls:
        per_call[call.call_id].append(call)
    assert all(len(v) == 1 for v in per_call.values())


def test_one_way_call_has_receiver_reports_but_no_rtp_back(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    (call,) = [c for c in labels.calls if c.category == "one_way"]
    (stream,) = call.streams
    assert stream.src_ip == call.caller_ip
    assert fields(path, f"rtp && ip.src == {call.callee_ip}", ["frame.number"]) == []
    reports = fields(path, f"rtcp && ip.src == {call.callee_ip}", ["rtcp.pt", "rtcp.ssrc.identifier"])
    assert reports
    # The report block is about the caller's stream (the SDES chunk that follows names the sender).
    assert all(row[0].startswith("201") and int(row[1].split(",")[0], 16) == stream.ssrc for row in reports)

    (silent,) = [c for c in labels.calls if c.category == "no_media"]
    assert silent.streams == []
    ips = f"ip.addr == {silent.caller_ip} && ip.addr == {silent.callee_ip}"
    assert fields(path, f"(rtp || rtcp) && {ips}", ["frame.number"]) == []


def test_sip_over_tcp_is_reassembled_with_valid_segments(demo: tuple[Path, SimulationLabels]) -> None:
    path, labels = demo
    (call,) = [c for c in labels.calls if c.transport == "TCP"]
    rows = fields(
        path,
        f'tcp && sip.Call-ID == "{call.call_id}"',
        ["sip.Method", "sip.Status-Code", "tcp.segment.count"],
    )
    assert [r[0] or r[1] for r in rows] == ["INVITE", "100", "180", "200", "ACK", "BYE", "200"]
    assert int(rows[0][2]) == 2  # the INVITE spans two segments
    assert fields(path, "tcp.analysis.flags", ["frame.number"]) == []
    checked = fields(
        path, "tcp && tcp.checksum.status != 1", ["frame.number"], ["-o", "tcp.check_checksum:TRUE"]
    )
    assert checked == []
