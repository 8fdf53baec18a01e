"""Shared captures as Wireshark's tools and other capture setups rewrite them, through ``callqual analyze``.

Mutations that keep every packet (format conversions, reordercap, dedup, Linux
cooked and VLAN/QinQ re-links, a big-endian writer) must give the original's
calls, streams and alerts; damaging ones (random byte errors, snap lengths,
chopped bytes, a wrong link type, a cut file, a merge with another link type)
must end with exit 0 or 4, never a traceback, and count what could not be read.
``bench/fuzz_other_tools.py`` runs the same mutations over every shared capture.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from callqual.cli.main import main
from callqual.collector.config import CollectorConfig
from callqual.fuzz.other_tools import INTACT, Mutation, damaging, without_frame_numbers
from callqual.pipeline.embedded import analyze_file
from tests.collector.event_equality import assert_same
from tests.shared_captures import PCAPS
from tests.tshark_reference import requires_tshark, rtp_streams

#: SIP over UDP with RTP and RTCP; SIP over TCP; a re-INVITE; RFC 4733 events; SLL with IPv6
#: fragments; SCTP over SLL; pcapng ERSPAN
CAPTURES = [
    "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
    "heplify/sip_ipv4_tcp.pcap",
    "sipnab/register-invite-reinvite-bye.pcap",
    "rtp-pcap/SIP_DTMF2.pcap",
    "rtp-pcap/sip-rtp-g729a.pcap",
    "sngrep/ipv6frag.pcap",
    "heplify/sip_sctp.pcap",
    "heplify/erspan_sip_ipv4_udp.pcapng",
]
OTHER_LINKTYPE = PCAPS / "heplify/ipip0.pcap"


def _analyze(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "report.json"
    code = main(["analyze", str(path), "--format", "json", "--no-progress", "-o", str(out)])
    capsys.readouterr()
    return code, json.loads(out.read_text())


def _mutate(mutation: Mutation, capture: Path, tmp_path: Path) -> Path:
    mutated = tmp_path / f"mutated.{mutation.suffix}"
    mutation.apply(capture, mutated)
    return mutated


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("mutation", INTACT, ids=lambda m: m.name)
def test_intact_rewrites_give_the_same_report(
    capture: str, mutation: Mutation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = PCAPS / capture
    if mutation.ethernet_only and capture in ("sngrep/ipv6frag.pcap", "heplify/sip_sctp.pcap"):
        with pytest.raises(ValueError, match="not Ethernet"):
            _mutate(mutation, original, tmp_path)
        return
    if mutation.reference is not None:
        mutation.reference(original, tmp_path / f"reference{original.suffix}")
        original = tmp_path / f"reference{original.suffix}"
    code, want = _analyze(original, tmp_path, capsys)
    got_code, got = _analyze(_mutate(mutation, PCAPS / capture, tmp_path), tmp_path, capsys)
    assert got_code == code == 0
    for key in ("calls", "streams", "alerts"):
        if mutation.renumbers:
            assert_same(without_frame_numbers(got[key]), without_frame_numbers(want[key]), key)
        else:
            assert_same(got[key], want[key], key)
    assert got["summary"]["errors"] == want["summary"]["errors"]


def test_the_rewrites_reach_the_media(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rewrites really reach the media: the RTP capture's streams are there, with their packets."""
    _, report = _analyze(
        _mutate(next(m for m in INTACT if m.name == "qinq"), PCAPS / CAPTURES[0], tmp_path), tmp_path, capsys
    )
    assert len(report["streams"]) == 3 and sum(s["packets"] for s in report["streams"]) == 548 + 891 + 6


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("mutation", damaging(OTHER_LINKTYPE), ids=lambda m: m.name)
def test_damaging_rewrites_are_counted_never_a_traceback(
    capture: str, mutation: Mutation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _analyze(_mutate(mutation, PCAPS / capture, tmp_path), tmp_path, capsys)
    summary = report["summary"]
    if mutation.name.startswith("head -c"):
        assert code == 4 and summary["truncated"]
        return
    assert code == 0 and not summary["truncated"]
    assert summary["frames"] > 0
    counted = sum(summary["errors"].values()) + sum(summary["skipped"].values())
    assert counted > 0, "a damaged capture must show what could not be read"
    assert not any(reason.startswith("internal.") for reason in summary["errors"])


@pytest.mark.parametrize("name", ["ipv4 fragments reversed", "ipv4 in ipv6 fragments"])
def test_fragmenting_rewrites_fragment(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The SIP messages (all over 256 bytes) arrive in fragments and still make the call."""
    mutation = next(m for m in INTACT if m.name == name)
    _, report = _analyze(_mutate(mutation, PCAPS / "rtp-pcap/sip-rtp-g729a.pcap", tmp_path), tmp_path, capsys)
    assert report["summary"]["skipped"]["ip.fragment_queued"] >= report["summary"]["sip_messages"] >= 5
    assert [c["state"] for c in report["calls"]] == ["completed"]


@requires_tshark
@pytest.mark.parametrize(
    "name", ["pcapng", "big-endian", "sll2", "qinq", "ipv4 fragments reversed", "ipv4 in ipv6 fragments"]
)
def test_rewritten_streams_match_tshark_on_the_rewrite(name: str, tmp_path: Path) -> None:
    """tshark reads the rewritten file too: its RTP streams and ours agree, as on the original."""
    mutation = next(m for m in INTACT if m.name == name)
    rewritten = _mutate(mutation, PCAPS / CAPTURES[0], tmp_path)
    reference = rtp_streams(rewritten, heuristic=True)
    ours = {
        (s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): s
        for s in analyze_file(rewritten, CollectorConfig(heuristic_rtp=True)).streams
    }
    assert ours.keys() == reference.keys() and len(ours) == 5
    for key, want in reference.items():
        got = ours[key]
        assert (got.packets, got.lost) == (want.packets, want.lost), key
        assert math.isclose(got.mean_jitter_ms, want.mean_jitter_ms, rel_tol=0.01, abs_tol=0.01), key
        assert math.isclose(got.max_delta_ms, want.max_delta_ms, rel_tol=0.01, abs_tol=0.01), key
