"""Re-INVITEs that re-bind a call's media while RTP keeps flowing in the same capture chunk.

The chunk loop stages RTP rows and resolves them to streams through fast-path
entries; a re-INVITE changes those entries mid-chunk (new ports, or the port
turned to T.38 fax). Staged rows must still name their stream (the KeyError -1
of sipnab/register-invite-reinvite-bye.pcap): whatever the re-binding, the
chunk path gives exactly the per-frame path's events, ``callqual analyze``
exits 0, and the streams tshark lists are ours.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import pytest

from callqual.schemas import AnalysisReport, StreamRecord
from tests.collector.callcraft import CallCapture, rtp, sdp, sip
from tests.collector.test_chunk_path import _check as assert_chunk_path_equals_frame_path
from tests.tshark_reference import rtp_streams

ALICE, BOB = ("10.0.0.1", 5060), ("10.0.0.2", 5060)


class Phase(NamedTuple):
    """What one offer/answer sets up: media kind, both ports, the codec, and which call it belongs to."""

    kind: str
    alice_port: int
    bob_port: int
    codec: str = "0"  # an RTP payload type of callcraft.RTPMAPS
    call: int = 1  # another number: a new call (new Call-ID) that takes over the ports


#: payload type -> (RTP timestamp step per 20 ms, payload)
_CODECS = {"0": (160, b"\xff" * 160), "96": (960, b"\x08" * 60)}


def _udptl(seq: int) -> bytes:
    """A T.38 UDPTL packet (ITU-T T.38 9.1): sequence number, then an IFP packet; never RTP-shaped."""
    return seq.to_bytes(2, "big") + b"\x06\xc0\x01\x80\x00\x00\x00"


def _media(phase: Phase, alice_ip: str, bob_ip: str) -> tuple[bytes, bytes]:
    if phase.kind == "audio":
        return (
            sdp(alice_ip, [("audio", phase.alice_port, "RTP/AVP", phase.codec)]),
            sdp(bob_ip, [("audio", phase.bob_port, "RTP/AVP", phase.codec)]),
        )
    return (
        sdp(alice_ip, [("image", phase.alice_port, "udptl", "t38")], session=2),
        sdp(bob_ip, [("image", phase.bob_port, "udptl", "t38")], session=2),
    )


def _call(path: Path, phases: list[Phase], in_flight: int = 5) -> Path:
    """Offer/answer through ``phases``, media both ways every 20 ms throughout.

    A phase of the same call is a re-INVITE, of another call a new INVITE on
    the same ports. Each codec of each call has its own SSRC (as endpoints do
    on a codec change); the first ``in_flight`` packets each way after each answer still
    use the previous phase (in flight when it arrived), so rows for the old and
    the new binding sit in one chunk: the whole capture is far smaller than one.
    Bob sends 25 ms behind Alice, so her first two packets on a new binding come
    before his first: the order that once staged his rows under no stream
    (KeyError -1 before b2f1939, with every "next-call" and "codec-change" case).
    """
    alice_ip, bob_ip = ALICE[0], BOB[0]
    capture = CallCapture()
    t = 0.0
    seq = {"a": 1000, "b": 5000}
    previous: Phase | None = None
    invite, ok, ack = "INVITE sip:bob@10.0.0.2 SIP/2.0", "SIP/2.0 200 OK", "ACK sip:bob@10.0.0.2 SIP/2.0"
    cseq = 0
    for phase in phases:
        call_id = f"rebind-{phase.call}@10.0.0.1"
        cseq = cseq + 1 if previous is not None and previous.call == phase.call else 1
        to_tag = "b1" if cseq > 1 else None
        offer, answer = _media(phase, alice_ip, bob_ip)
        capture.add(t, ALICE, BOB, sip(invite, call_id, f"{cseq} INVITE", to_tag=to_tag, body=offer))
        capture.add(t + 0.03, BOB, ALICE, sip(ok, call_id, f"{cseq} INVITE", to_tag="b1", body=answer))
        capture.add(t + 0.04, ALICE, BOB, sip(ack, call_id, f"{cseq} ACK", to_tag="b1"))
        for i in range(60):
            now = previous if previous is not None and i < in_flight else phase
            alice, bob = (alice_ip, now.alice_port), (bob_ip, now.bob_port)
            for side, src, dst, offset in [("a", alice, bob, 0.0), ("b", bob, alice, 0.025)]:
                seq[side] += 1
                if now.kind == "audio":
                    step, payload = _CODECS[now.codec]
                    ssrc = zlib.crc32(f"{side}{now.call}{now.codec}".encode())
                    packet = rtp(seq[side], step * seq[side], ssrc, payload, pt=int(now.codec), marker=i == 0)
                else:
                    packet = _udptl(seq[side])
                capture.add(t + 0.031 + i * 0.02 + offset, src, dst, packet)
        previous = phase
        t += 1.5
    assert previous is not None
    bye = sip(
        "BYE sip:bob@10.0.0.2 SIP/2.0", f"rebind-{previous.call}@10.0.0.1", f"{cseq + 1} BYE", to_tag="b1"
    )
    capture.add(t, ALICE, BOB, bye)
    return capture.write(path)


SCENARIOS = {
    # sipnab/register-invite-reinvite-bye.pcap's shape: same ports, PCMU to opus, new SSRCs
    "reinvite-codec-change": [Phase("audio", 4000, 5000), Phase("audio", 4000, 5000, "96")],
    "reinvite-new-ports": [Phase("audio", 4000, 5000), Phase("audio", 4002, 5002)],
    "reinvite-back-and-forth": [
        Phase("audio", 4000, 5000),
        Phase("audio", 4002, 5002),
        Phase("audio", 4000, 5000),
    ],
    "t38-same-port": [Phase("audio", 4000, 5000), Phase("image", 4000, 5000)],
    "t38-other-port": [Phase("audio", 4000, 5000), Phase("image", 4010, 5010)],
    "t38-and-back-to-audio": [
        Phase("audio", 4000, 5000),
        Phase("image", 4000, 5000),
        Phase("audio", 4000, 5000),
    ],
    "next-call-takes-the-ports": [Phase("audio", 4000, 5000), Phase("audio", 4000, 5000, "96", call=2)],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("heuristic", [False, True], ids=["sdp", "heuristic"])
@pytest.mark.parametrize("in_flight", [0, 5], ids=["clean-cut", "in-flight"])
def test_chunk_path_equals_frame_path(tmp_path: Path, name: str, heuristic: bool, in_flight: int) -> None:
    path = _call(tmp_path / f"{name}.pcap", SCENARIOS[name], in_flight)
    assert assert_chunk_path_equals_frame_path(path, heuristic) > 0


@pytest.mark.tshark
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_analyze_exits_0_and_has_every_stream_tshark_lists(tmp_path: Path, name: str) -> None:
    path = _call(tmp_path / f"{name}.pcap", SCENARIOS[name])
    proc = subprocess.run(
        [sys.executable, "-m", "callqual", "analyze", str(path), "--format", "json"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    ours: dict[tuple[str, int, str, int, int], list[StreamRecord]] = defaultdict(list)
    for s in AnalysisReport.model_validate_json(proc.stdout).streams:
        ours[s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc].append(s)
    reference = rtp_streams(path)
    assert reference
    for key, want in reference.items():
        records = ours[key]
        assert sum(r.packets for r in records) == want.packets, f"{name} {key}"
        if name == "next-call-takes-the-ports" and len(records) == 2:
            # By design a stream belongs to one call: the old call's packets still in flight when
            # the next call's SDP took the ports are a stream of their own; tshark has one.
            continue
        assert [(r.packets, r.lost) for r in records] == [(want.packets, want.lost)], f"{name} {key}"
