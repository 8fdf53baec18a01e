"""Done-means of the analysis core: our numbers agree with tshark's on every shared capture.

For every capture in ../shared/pcaps that tshark reads, every RTP stream that
``tshark -q -z rtp,streams`` lists is in our JSON with equal packets and lost,
and max delta / mean jitter / max jitter within 1% or 0.01 ms. The same holds
with RTP heuristics on for the RTP-only captures. SIP calls and their final
statuses match what tshark decodes.
"""

from collections import defaultdict
from pathlib import Path

import pytest

from callqual.collector.config import CollectorConfig
from callqual.pipeline.embedded import analyze_file
from callqual.schemas import AnalysisReport
from tests.shared_captures import PCAPS
from tests.tshark_reference import fields, rtp_streams

SHARED = PCAPS
CAPTURES = sorted(p for p in SHARED.rglob("*") if p.suffix in {".pcap", ".pcapng"})
#: Captures with RTP and no signalling: compared with RTP heuristics on, on both sides.
RTP_ONLY = {"sipp/g711a.pcap", "nDPI/rtp.pcapng", "rtpproxy/rtcp.o.pcap"}
#: Wireshark's own fuzz-test capture (byte-mutated aaa.pcap): tshark decodes some packets that
#: it flags itself as malformed, or that RFC 3550 forbids. Compared separately, with the evidence.
FUZZ = SHARED / "nDPI/fuzz-2006-06-26-2594.pcap"
EXPERT_ERROR = 8388608  # epan/proto.h PI_ERROR


def _rel(p: Path) -> str:
    return str(p.relative_to(SHARED))


def _close(ours: float, ref: float) -> bool:
    return abs(ours - ref) <= max(0.01, 0.01 * abs(ref))


def _check_streams(report: AnalysisReport, path: Path, heuristic: bool) -> int:
    ours = {(s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): s for s in report.streams}
    ref = rtp_streams(path, heuristic=heuristic)
    for key, t in ref.items():
        assert key in ours, f"{_rel(path)}: tshark stream {key} missing; ours: {sorted(ours)}"
        s = ours[key]
        assert (s.packets, s.lost) == (t.packets, t.lost), f"{_rel(path)} {key}"
        assert _close(s.max_delta_ms, t.max_delta_ms), (
            f"{_rel(path)} {key} max delta {s.max_delta_ms} vs {t.max_delta_ms}"
        )
        assert _close(s.mean_jitter_ms, t.mean_jitter_ms), (
            f"{_rel(path)} {key} mean jitter {s.mean_jitter_ms} vs {t.mean_jitter_ms}"
        )
        assert _close(s.max_jitter_ms, t.max_jitter_ms), (
            f"{_rel(path)} {key} max jitter {s.max_jitter_ms} vs {t.max_jitter_ms}"
        )
    return len(ref)


def test_the_shared_captures_are_there() -> None:
    assert len(CAPTURES) >= 30, f"expected the shared captures in {SHARED}"


@pytest.mark.tshark
@pytest.mark.parametrize("path", [c for c in CAPTURES if c != FUZZ], ids=_rel)
def test_rtp_streams_match_tshark(path: Path) -> None:
    report = analyze_file(path)
    _check_streams(report, path, heuristic=False)


@pytest.mark.tshark
@pytest.mark.parametrize("rel", sorted(RTP_ONLY))
def test_rtp_only_captures_match_tshark_heuristics(rel: str) -> None:
    path = SHARED / rel
    report = analyze_file(path, CollectorConfig(heuristic_rtp=True))
    assert _check_streams(report, path, heuristic=True) >= 1


def _tshark_invite_calls(path: Path) -> dict[str, int | None]:
    """Call-ID -> final status of its INVITE dialog, as decoded by tshark.

    The same definition as ours: a 2xx wins; otherwise the final response to the
    highest INVITE CSeq (a 407 challenge followed by a 403 is a 403 call).
    """
    rows = fields(
        path, "sip", ["sip.Call-ID", "sip.Method", "sip.Status-Code", "sip.CSeq.seq", "sip.CSeq.method"]
    )
    calls: dict[str, int | None] = {}
    best: dict[str, tuple[int, int]] = defaultdict(lambda: (-1, 0))
    for call_id, method, status, cseq, cseq_method in (r[:5] for r in rows):
        if method == "INVITE":
            calls.setdefault(call_id, None)
        if call_id not in calls or cseq_method != "INVITE" or not status:
            continue
        code = int(status.split(",")[0])
        if code < 200:
            continue
        if 200 <= code < 300:
            best[call_id] = (1 << 30, code)
        elif best[call_id][0] < (1 << 30) and int(cseq) >= best[call_id][0]:
            best[call_id] = (int(cseq), code)
    for call_id in calls:
        if call_id in best:
            calls[call_id] = best[call_id][1]
    return calls


@pytest.mark.tshark
@pytest.mark.parametrize("path", [c for c in CAPTURES if c != FUZZ], ids=_rel)
def test_sip_calls_and_final_statuses_match_tshark(path: Path) -> None:
    report = analyze_file(path)
    ours = {c.call_id: c.final_status for c in report.calls}
    assert ours == _tshark_invite_calls(path)


@pytest.mark.tshark
def test_fuzz_capture_streams_match_but_for_an_rfc_invalid_packet() -> None:
    """tshark lists a one-packet stream whose RTP padding count eats into its own header.

    RFC 3550 5.1: the last octet of a padded packet counts padding octets, which
    cannot overlap the fixed header and CSRC list. Frame 630 declares 10 CSRCs
    (52 header octets) and 170 padding octets in a 172-octet payload; we reject
    it as ``rtp.bad_header`` and tshark still tallies it as stream 0xAAAAAAAA.
    """
    report = analyze_file(FUZZ)
    ours = {(s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): s for s in report.streams}
    ref = rtp_streams(FUZZ)
    missing = {key for key in ref if key not in ours}
    assert {key[4] for key in missing} == {0xAAAAAAAA}
    rows = fields(FUZZ, "rtp.ssrc == 0xAAAAAAAA", ["rtp.cc", "rtp.padding", "udp.payload"])
    ((cc, padding, hexdata),) = (r[:3] for r in rows)
    header = 12 + 4 * int(cc)
    payload = bytes.fromhex(hexdata.replace(":", ""))
    assert padding == "1"
    assert len(payload) - payload[-1] < header  # the padding overlaps the header: invalid
    assert report.summary.errors.get("rtp.bad_header", 0) >= 1
    for key, t in ref.items():
        if key in ours:
            assert (ours[key].packets, ours[key].lost) == (t.packets, t.lost)


@pytest.mark.tshark
def test_fuzz_capture_calls_match_but_for_invites_tshark_flags_as_errors() -> None:
    """Every call tshark lists and we do not rests on INVITEs tshark itself flags as errors.

    We keep every call tshark finds whose INVITE is merely bent (a mangled header name, a
    Latin-1 byte); the ones we drop have no usable Call-ID or From, and tshark marks each of
    their INVITEs with an error-severity expert item ("Malformed Packet", "Invalid media port").
    """
    report = analyze_file(FUZZ)
    ours = {c.call_id: c.final_status for c in report.calls}
    theirs = _tshark_invite_calls(FUZZ)
    for call_id, status in ours.items():
        assert theirs.get(call_id, "absent") == status
    invites = fields(FUZZ, 'sip.Method == "INVITE"', ["sip.Call-ID", "_ws.expert.severity"])
    severities: dict[str, set[int]] = defaultdict(set)
    for call_id, sev in (r[:2] for r in invites):
        severities[call_id].update(int(x) for x in sev.split(",") if x)
    dropped = set(theirs) - set(ours)
    assert dropped, "expected tshark to accept some broken INVITEs"
    for call_id in dropped:
        assert EXPERT_ERROR in severities[call_id], f"{call_id!r}: tshark saw no error, we should keep it"
