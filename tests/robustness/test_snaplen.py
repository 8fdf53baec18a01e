"""Captures taken with a snap length (``tcpdump -s 200``, ``editcap -s``): RTP headers kept, payloads cut.

Such a datagram was whole on the wire: only the capture kept less of it
(caplen < orig_len). Its stream statistics need only the header, so they must
equal tshark's on the same cut file and ours on the uncut original; SIP cut
mid-header, TCP, fragments and RTP headers cut short are counted, never guessed.
"""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

import pytest

from callqual.collector.config import CollectorConfig
from callqual.fuzz.other_tools import read_classic_pcap, write_classic_pcap
from callqual.pipeline.embedded import analyze_file
from callqual.schemas import AnalysisReport
from tests.shared_captures import PCAPS
from tests.tshark_reference import StreamKey, TsharkStream, requires_tshark, rtp_streams

CAPTURE = PCAPS / "heplify/rtp_rtcp_sip_ipv4_udp.pcap"


def _snapped(tmp_path: Path, snaplen: int, capture: Path = CAPTURE) -> Path:
    out = tmp_path / f"s{snaplen}.pcap"
    subprocess.run(["editcap", "-s", str(snaplen), str(capture), str(out)], check=True, capture_output=True)
    return out


def _streams(report: AnalysisReport) -> dict[StreamKey, tuple[int, int, float, float, float, int]]:
    return {
        (s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): (
            s.packets,
            s.lost,
            s.mean_delta_ms,
            s.max_jitter_ms,
            s.mean_jitter_ms,
            s.payload_bytes,
        )
        for s in report.streams
    }


@pytest.mark.parametrize("snaplen", [54, 100, 200])
def test_rtp_statistics_survive_the_snaplen(tmp_path: Path, snaplen: int) -> None:
    """54 bytes: Ethernet, IPv4, UDP and the 12-byte RTP header, not one byte of payload."""
    config = CollectorConfig(heuristic_rtp=True)
    original = _streams(analyze_file(CAPTURE, config))
    report = analyze_file(_snapped(tmp_path, snaplen), config)
    cut = _streams(report)
    assert cut.keys() == original.keys() and len(cut) == 5
    for key, (packets, lost, mean_delta, max_jitter, mean_jitter, payload) in cut.items():
        want = original[key]
        assert (packets, lost, payload) == (want[0], want[1], want[5]), key
        assert all(
            math.isclose(a, b, rel_tol=1e-9)
            for a, b in zip(want[2:5], (mean_delta, max_jitter, mean_jitter), strict=True)
        )
    assert report.summary.skipped["udp.snapped"] > 2800
    assert not report.summary.errors.get("rtp.snapped_header")


@requires_tshark
@pytest.mark.parametrize("heuristic", [False, True], ids=["sdp", "heuristic"])
def test_snapped_streams_match_tshark(tmp_path: Path, heuristic: bool) -> None:
    """-s 200 also cuts the SDP of most calls: without heuristics only the call whose SDP fits is seen."""
    cut = _snapped(tmp_path, 200)
    reference: dict[StreamKey, TsharkStream] = rtp_streams(cut, heuristic=heuristic)
    ours = _streams(analyze_file(cut, CollectorConfig(heuristic_rtp=heuristic)))
    assert ours.keys() == reference.keys() and len(ours) == (5 if heuristic else 1)
    for key, want in reference.items():
        packets, lost, mean_delta, max_jitter, mean_jitter, _ = ours[key]
        assert (packets, lost) == (want.packets, want.lost), key
        for mine, theirs in ((mean_delta, want.mean_delta_ms), (max_jitter, want.max_jitter_ms)):
            assert math.isclose(mine, theirs, rel_tol=0.01, abs_tol=0.01), key
        assert math.isclose(mean_jitter, want.mean_jitter_ms, rel_tol=0.01, abs_tol=0.01), key


def test_sip_cut_by_the_snaplen_is_counted_as_such(tmp_path: Path) -> None:
    """-s 200 cuts most SIP datagrams mid-header: malformed because snapped, not for a missing Call-ID."""
    report = analyze_file(_snapped(tmp_path, 200))
    assert report.summary.errors == {"ip.truncated": 119, "sip.snapped": 14}


def test_what_a_snaplen_cuts_beyond_use_is_counted(tmp_path: Path) -> None:
    """50 bytes cut the RTP header; TCP segments and SIP datagrams lose their text: counted, not guessed."""
    report = analyze_file(_snapped(tmp_path, 50), CollectorConfig(heuristic_rtp=True))
    assert report.streams == [] and report.calls == []
    assert report.summary.frames == 4269
    tcp = analyze_file(_snapped(tmp_path, 200, PCAPS / "heplify/sip_ipv4_tcp.pcap"))
    assert tcp.calls == [] and tcp.summary.errors["ip.truncated"] > 0


def test_an_rtp_header_cut_short_is_counted(tmp_path: Path) -> None:
    """An RTP flow the SDP announced, cut inside its header (50 bytes keep 8 of its 12), SIP left whole."""
    sdp_call = PCAPS / "rtp-pcap/sip-rtp-g729a.pcap"
    (stream,) = analyze_file(sdp_call).streams
    linktype, nanos, snap, records = read_classic_pcap(sdp_call)
    assert linktype == 1
    ports = struct.pack("!HH", stream.src_port, stream.dst_port)
    cut = [(s, u, o, d[:50] if d[34:38] == ports else d) for s, u, o, d in records]
    out = tmp_path / "rtp-header-cut.pcap"
    write_classic_pcap(out, linktype, nanos, snap, cut)

    report = analyze_file(out)
    assert report.summary.errors["rtp.snapped_header"] == stream.packets
    assert report.streams == [] and len(report.calls) == 1
