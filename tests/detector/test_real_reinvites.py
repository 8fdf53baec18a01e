"""A real SIPp call with re-INVITEs from both sides keeps its direction (issue 11, item 1).

Two SIPp phones on a private namespace's loopback (see
:mod:`tests.detector.sip_lab`) play PCMA at each other through session
refreshes from the callee and the caller, a hold and resume from the callee
and a callee re-INVITE moving its media port (:mod:`reinvite_scenarios`);
tcpdump captures it. Per-direction packet counts are read from the capture
with dpkt, independently of callqual, and must match the detector's.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.call_context import CallContext
from callqual.detector.features import CallFeatures, extract
from callqual.detector.rules.media import stream_direction
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import Alert, AnalysisReport
from tests.detector.reinvite_scenarios import MOVED_PORT, RE_INVITES, callee_scenario, caller_scenario
from tests.detector.sip_lab import CALLEE_IP, CALLER_IP, SipLab, stop

pytestmark = pytest.mark.slow

CALLER_MEDIA_PORT, CALLEE_MEDIA_PORT = 6000, 6100


@dataclass
class _FeatureProbe:
    """A CallScorer that alerts on nothing and keeps each call's context and model features."""

    calls: list[tuple[CallContext, CallFeatures]] = field(default_factory=list)

    def score(self, ctx: CallContext) -> Alert | None:
        self.calls.append((ctx, extract(ctx)))
        return None


@dataclass
class Capture:
    pcap: Path
    report: AnalysisReport
    probe: _FeatureProbe


def _sipp(*args: str) -> list[str]:
    return ["sipp", *args, "-m", "1", "-nostdin", "-timeout", "30s", "-trace_err"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    for tool in ("tcpdump", "sipp"):
        assert shutil.which(tool), f"{tool} missing: run ./scripts/setup"
    work = tmp_path_factory.mktemp("reinvites")
    pcap = work / "reinvites.pcap"
    (work / "callee.xml").write_text(callee_scenario(), encoding="utf-8")
    (work / "caller.xml").write_text(caller_scenario(), encoding="utf-8")
    lab = SipLab(work, ns=f"cqreinv{time.monotonic_ns() % 100000}")
    lab.create()
    try:
        dump = lab.start(
            "tcpdump", *("tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(pcap), "udp"), ready="listening on"
        )
        callee = lab.start(
            "callee",
            *_sipp("-sf", "callee.xml", "-i", CALLEE_IP, "-p", "5080"),
            *("-mi", CALLEE_IP, "-mp", str(CALLEE_MEDIA_PORT)),
        )
        time.sleep(0.5)
        caller = lab.run(
            "caller",
            *_sipp(f"{CALLEE_IP}:5080", "-sf", "caller.xml", "-i", CALLER_IP, "-p", "5070"),
            *("-mi", CALLER_IP, "-mp", str(CALLER_MEDIA_PORT)),
            timeout=40,
        )
        assert caller.returncode == 0, caller.output
        assert callee.wait(timeout=20) == 0, (work / "callee.log").read_text()
        time.sleep(1.5)  # tcpdump hands over its last partly filled block after its 1 s timeout
        stats = stop(dump)
        assert re.search(r"^0 packets dropped by kernel", stats, re.M), stats
    finally:
        lab.destroy()
    probe = _FeatureProbe()
    pipeline = EmbeddedPipeline(scorer=probe)
    with open_capture(pcap) as cap:
        pipeline.run(cap)
        pipeline.finish()
        report = pipeline.report(str(pcap), cap.truncated, cap.errors)
    yield Capture(pcap, report, probe)


def _rtp_packets_by_direction(pcap: Path) -> Counter[str]:
    """UDP datagrams between the two media IPs, not SIP, by sender (dpkt, not our decoder)."""
    out: Counter[str] = Counter()
    with pcap.open("rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.udp.UDP):
                continue
            udp = ip.data
            src = ".".join(map(str, ip.src))
            if udp.sport in (5070, 5080) or udp.dport in (5070, 5080):
                continue
            if src == CALLER_IP and udp.sport == CALLER_MEDIA_PORT:
                out["caller_to_callee"] += 1
            elif src == CALLEE_IP and udp.sport == CALLEE_MEDIA_PORT:
                out["callee_to_caller"] += 1
    return out


def test_the_call_went_through_every_reinvite(capture: Capture) -> None:
    (call,) = capture.report.calls
    assert call.final_status == 200 and call.state == "completed"
    assert call.requests["INVITE"] == 1 + RE_INVITES
    assert call.hangup_by == "callee"
    # the caller followed the callee to its new port: a stream towards it
    assert MOVED_PORT in {s.dst_port for s in capture.report.streams}


def test_no_one_way_audio_and_per_direction_packets_match_the_capture(capture: Capture) -> None:
    assert [a.rule for a in capture.report.alerts] == []
    expected = _rtp_packets_by_direction(capture.pcap)
    assert expected["caller_to_callee"] > 200 and expected["callee_to_caller"] > 200, expected
    ((ctx, features),) = capture.probe.calls
    seen: Counter[str] = Counter()
    for st in ctx.streams:
        direction = stream_direction(ctx, st)
        assert direction is not None, st
        seen[direction] += st.packets
    assert seen == expected
    assert features.fwd_packets == expected["caller_to_callee"]
    assert features.rev_packets == expected["callee_to_caller"]
    assert features.rev_mos > 4.0 and features.fwd_mos > 4.0


def test_the_callee_hold_was_seen_and_resumed(capture: Capture) -> None:
    ((ctx, _),) = capture.probe.calls
    directions = [m.direction for m in ctx.sdp.callee]
    assert "sendonly" in directions
    assert ctx.record.answered_media[0].direction == "sendrecv"
    assert ctx.record.answered_media[0].port == MOVED_PORT
    assert ctx.record.offered_media[0].port == CALLER_MEDIA_PORT
    assert [ex.offerer for ex in ctx.sdp.exchanges] == [
        "caller",
        "callee",
        "caller",
        "callee",
        "callee",
        "callee",
    ]
