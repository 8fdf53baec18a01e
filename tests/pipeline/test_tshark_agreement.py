"""Done-means of the analysis core: our numbers agree with tshark's on every shared capture.

For every capture in ../shared/pcaps that tshark reads, every RTP stream that
``tshark -q -z rtp,streams`` lists is in our JSON with equal packets and lost,
and max delta / mean jitter / max jitter within 1% or 0.01 ms; the same with
RTP heuristics on, on both sides. Wireshark's own fuzz capture included: where
its mutated packets look odd, tshark's per-packet evidence below shows why the
numbers are what they are. SIP calls and their final statuses match what
tshark decodes.
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
#: Wireshark's own fuzz-test capture (byte-mutated aaa.pcap): its calls are compared separately.
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
@pytest.mark.parametrize("path", CAPTURES, ids=_rel)
def test_rtp_streams_match_tshark(path: Path) -> None:
    report = analyze_file(path)
    _check_streams(report, path, heuristic=False)


@pytest.mark.tshark
@pytest.mark.parametrize("path", CAPTURES, ids=_rel)
def test_rtp_streams_match_tshark_heuristics(path: Path) -> None:
    report = analyze_file(path, CollectorConfig(heuristic_rtp=True))
    found = _check_streams(report, path, heuristic=True)
    assert found >= 1 or _rel(path) not in RTP_ONLY


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


def _assert_calls_agree(path: Path) -> set[str]:
    """Our calls and final statuses are tshark's, but for INVITEs tshark itself flags as errors.

    Byte-mutated captures (Wireshark's fuzz capture, or any rewrite of it into another
    format) carry INVITEs with no usable Call-ID or From: tshark lists them with an
    error-severity expert item ("Malformed Packet"), we count them as malformed. Every other
    call must be the same on both sides, with the same final status. Returns the dropped ids.
    """
    report = analyze_file(path)
    ours = {c.call_id: c.final_status for c in report.calls}
    theirs = _tshark_invite_calls(path)
    for call_id, status in ours.items():
        assert theirs.get(call_id, "absent") == status, f"{_rel(path)}: {call_id!r}"
    dropped = set(theirs) - set(ours)
    if dropped:
        invites = fields(path, 'sip.Method == "INVITE"', ["sip.Call-ID", "_ws.expert.severity"])
        severities: dict[str, set[int]] = defaultdict(set)
        for call_id, sev in (r[:2] for r in invites):
            severities[call_id].update(int(x) for x in sev.split(",") if x)
        for call_id in dropped:
            assert EXPERT_ERROR in severities[call_id], f"{_rel(path)}: {call_id!r}: tshark saw no error"
    return dropped


@pytest.mark.tshark
@pytest.mark.parametrize("path", CAPTURES, ids=_rel)
def test_sip_calls_and_final_statuses_match_tshark(path: Path) -> None:
    _assert_calls_agree(path)


@pytest.mark.tshark
def test_fuzz_capture_padding_past_the_header_is_counted_by_the_header() -> None:
    """tshark tallies a packet whose RTP padding count eats into its own header; so do we.

    RFC 3550 5.1 forbids it: frame 630 declares 10 CSRCs (52 header octets) and
    170 padding octets in a 172-octet payload. tshark clips the padding and
    counts the packet as stream 0xAAAAAAAA, by its header, as it must for SRTP,
    whose last octet is the auth tag; our stream has that one packet.
    """
    rows = fields(FUZZ, "rtp.ssrc == 0xAAAAAAAA", ["rtp.cc", "rtp.padding", "udp.payload"])
    ((cc, padding, hexdata),) = (r[:3] for r in rows)
    payload = bytes.fromhex(hexdata.replace(":", ""))
    assert padding == "1" and len(payload) - payload[-1] < 12 + 4 * int(cc)  # overlaps the header
    report = analyze_file(FUZZ)
    (stream,) = (s for s in report.streams if s.ssrc == 0xAAAAAAAA)
    assert stream.packets == 1


@pytest.mark.tshark
def test_fuzz_capture_a_timestamp_before_the_first_is_not_analysed() -> None:
    """The 3-packet stream 192.168.1.2:30000 -> 212.242.33.36:40392: one delta and one jitter.

    tshark's per-packet fields: frames 626, 627, 628 with RTP timestamps 1560,
    1720, 1368. The third is before the first (tap-rtp-analysis.c
    ``in_time_sequence`` is false), so tshark counts it but computes neither its
    delta nor its jitter (we once did, giving 2.31/3.72 ms): one delta, 5.666 ms,
    and one jitter, |5.666 - (1720 - 1560) / 8| / 16 = 0.896 ms, min = mean = max.
    """
    key = ("212.242.33.36", 40392, 0x3796CB71)
    rows = fields(
        FUZZ,
        "rtp.ssrc == 0x3796CB71 && ip.dst == 212.242.33.36",
        ["frame.number", "frame.time_epoch", "rtp.timestamp"],
    )
    frames = [(int(r[0]), float(r[1]), int(r[2])) for r in rows]
    assert [(f, rtp_ts) for f, _, rtp_ts in frames] == [(626, 1560), (627, 1720), (628, 1368)]
    one_delta = (frames[1][1] - frames[0][1]) * 1000
    one_jitter = abs(one_delta - (1720 - 1560) / 8) / 16
    (theirs,) = (t for k, t in rtp_streams(FUZZ).items() if k[2:] == key)
    assert (
        theirs.min_delta_ms
        == theirs.mean_delta_ms
        == theirs.max_delta_ms
        == pytest.approx(one_delta, abs=1e-3)
    )
    assert theirs.mean_jitter_ms == theirs.max_jitter_ms == pytest.approx(one_jitter, abs=1e-3)
    (ours,) = (s for s in analyze_file(FUZZ).streams if (s.dst_ip, s.dst_port, s.ssrc) == key)
    assert ours.packets == 3
    assert ours.min_delta_ms == pytest.approx(one_delta) and ours.max_delta_ms == pytest.approx(one_delta)
    assert ours.mean_jitter_ms == pytest.approx(one_jitter) and ours.max_jitter_ms == pytest.approx(
        one_jitter
    )


@pytest.mark.tshark
def test_fuzz_capture_calls_match_but_for_invites_tshark_flags_as_errors() -> None:
    """Every call tshark lists and we do not rests on INVITEs tshark itself flags as errors.

    We keep every call tshark finds whose INVITE is merely bent (a mangled header name, a
    Latin-1 byte); the ones we drop have no usable Call-ID or From, and tshark marks each of
    their INVITEs with an error-severity expert item ("Malformed Packet", "Invalid media port").
    """
    assert _assert_calls_agree(FUZZ), "expected tshark to accept some broken INVITEs"
