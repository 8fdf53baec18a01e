"""Mid-call alerts on real SIPp calls (issue 16's "Done when"): before the call ends, one per problem.

Seven calls at once on a private namespace's loopback (:mod:`tests.detector.sip_lab`),
captured with tcpdump, then analysed in-process at capture time (:mod:`live_replay`):

* one-way audio: the callee plays SIPp's 7 s PCMA sample once (30 ms packets), the caller talks
  on for 35 s; the same with the sample re-packetised at 20 ms and at 40 ms;
* answered without RTP: neither side plays anything, the caller hangs up after 20 s;
* failed: the callee rings, then answers 503 Service Unavailable (486 Busy is no failure by default);
* hold: 5 s into the call the caller puts the callee on hold (re-INVITE ``sendonly``, answered
  ``recvonly``) and plays on (music on hold); the callee stops 2 s later: no alert;
* silence suppression: the callee offers comfort noise and talks 4 s, then is silent 12 s (one
  CN packet), talks 2 s, silent 12 s, talks 3 s, while the caller talks all along: no alert.

Times of the BYE, the final response and the callee's last RTP packet are read from the capture
with dpkt, independently of callqual.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from callqual.detector.rules.settings import RuleSettings
from callqual.schemas import Alert, CallRecord
from callqual.transport.topics import Topics
from tests.detector.live_call_scenarios import (
    G711A_PCAP,
    REFUSED_CALLER_SCENARIO,
    callee_scenario,
    caller_scenario,
    looped_audio,
    refused_callee_scenario,
    rtp_audio,
)
from tests.detector.live_replay import Replay, replay
from tests.detector.sip_lab import Packet, SipLab, read_sip, stop
from tests.pipeline.test_kafka_pipeline import _prefix, collector, detector, finish, read_topic

pytestmark = pytest.mark.slow

SIP_PORT_CALLER, SIP_PORT_CALLEE, MEDIA_PORT = 5070, 5080, 6000


@dataclass(frozen=True)
class Pair:
    """One call: the caller's and the callee's address."""

    caller_ip: str
    callee_ip: str


PAIRS = {
    "one_way": Pair("127.0.0.31", "127.0.0.32"),
    "one_way_20ms": Pair("127.0.0.33", "127.0.0.34"),
    "one_way_40ms": Pair("127.0.0.35", "127.0.0.36"),
    "no_media": Pair("127.0.0.41", "127.0.0.42"),
    "refused": Pair("127.0.0.51", "127.0.0.52"),
    "hold": Pair("127.0.0.61", "127.0.0.62"),
    "silence_suppressed": Pair("127.0.0.71", "127.0.0.72"),
}
#: the calls whose callee's media stops 7 s in while the caller talks on, by packetisation time
ONE_WAY = {"one_way": 30, "one_way_20ms": 20, "one_way_40ms": 40}
#: the silence-suppressing callee: (seconds, talking)
TALKSPURTS = [(4.0, True), (12.0, False), (2.0, True), (12.0, False), (3.0, True)]
#: how long the caller of the one-way call talks (its audio: the sample looped 5 times, 35.4 s)
ONE_WAY_TALK_MS = 35_000


def _scenarios(work: Path) -> dict[str, tuple[str, str]]:
    """Each call's (caller, callee) scenario."""
    talk = looped_audio(work / "talk.pcap", times=5)
    brief = {ms: rtp_audio(work / f"brief-{ms}ms.pcap", ms, [(7.05, True)]) for ms in (20, 40)}
    spurts = rtp_audio(work / "spurts.pcap", 20, TALKSPURTS, comfort_noise=True)
    return {
        "one_way": (caller_scenario(talk, ONE_WAY_TALK_MS), callee_scenario(G711A_PCAP)),
        "one_way_20ms": (caller_scenario(talk, ONE_WAY_TALK_MS), callee_scenario(brief[20])),
        "one_way_40ms": (caller_scenario(talk, ONE_WAY_TALK_MS), callee_scenario(brief[40])),
        "no_media": (caller_scenario(None, 20_000), callee_scenario(None)),
        "refused": (
            REFUSED_CALLER_SCENARIO.replace("STATUS", "503"),
            refused_callee_scenario("503 Service Unavailable"),
        ),
        "hold": (
            caller_scenario(talk, ONE_WAY_TALK_MS, hold_after_ms=5_000),
            callee_scenario(brief[20], held=True),
        ),
        "silence_suppressed": (
            caller_scenario(talk, ONE_WAY_TALK_MS),
            callee_scenario(spurts, comfort_noise=True),
        ),
    }


@dataclass
class Lab:
    pcap: Path
    run: Replay
    packets: list[Packet]

    def call(self, name: str) -> CallRecord:
        (call,) = [c for c in self.run.report.calls if c.caller_ip == PAIRS[name].caller_ip]
        return call

    def sip_ts(self, name: str, first_line: str) -> float:
        """Capture time of the first SIP message of that call starting with ``first_line``."""
        ips = {PAIRS[name].caller_ip, PAIRS[name].callee_ip}
        return min(p.ts for p in self.packets if p.src in ips and p.first_line.startswith(first_line))

    def last_rtp_ts(self, src: str) -> float:
        return max(p.ts for p in self.packets if p.src == src and p.sport == MEDIA_PORT)


def _sipp(*args: str) -> list[str]:
    return ["sipp", *args, "-m", "1", "-nostdin", "-timeout", "50s", "-trace_err"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    for tool in ("tcpdump", "sipp"):
        assert shutil.which(tool), f"{tool} missing: run ./scripts/setup"
    work = tmp_path_factory.mktemp("live")
    pcap = work / "live.pcap"
    sip = SipLab(work, ns=f"cqlive{time.monotonic_ns() % 100000}")
    sip.create()
    try:
        dump = sip.start(
            "tcpdump", *("tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(pcap), "udp"), ready="listening on"
        )
        callees, callers = {}, {}
        for name, (caller_xml, callee_xml) in _scenarios(work).items():
            (work / f"{name}-callee.xml").write_text(callee_xml, encoding="utf-8")
            (work / f"{name}-caller.xml").write_text(caller_xml, encoding="utf-8")
        for name, pair in PAIRS.items():
            callees[name] = sip.start(
                f"{name}-callee",
                *_sipp("-sf", f"{name}-callee.xml", "-i", pair.callee_ip, "-p", str(SIP_PORT_CALLEE)),
                *("-mi", pair.callee_ip, "-mp", str(MEDIA_PORT)),
            )
        time.sleep(0.5)
        for name, pair in PAIRS.items():
            callers[name] = sip.start(
                f"{name}-caller",
                *_sipp(f"{pair.callee_ip}:{SIP_PORT_CALLEE}", "-sf", f"{name}-caller.xml"),
                *("-i", pair.caller_ip, "-p", str(SIP_PORT_CALLER), "-mi", pair.caller_ip),
                *("-mp", str(MEDIA_PORT)),
            )
        for name in PAIRS:
            assert callers[name].wait(timeout=55) == 0, (work / f"{name}-caller.log").read_text()
            assert callees[name].wait(timeout=10) == 0, (work / f"{name}-callee.log").read_text()
        time.sleep(1.5)  # tcpdump hands over its last partly filled block after its 1 s timeout
        stats = stop(dump)
        assert re.search(r"^0 packets dropped by kernel", stats, re.M), stats
    finally:
        sip.destroy()
    yield Lab(pcap, replay(pcap), read_sip(pcap))


@pytest.mark.parametrize("name", ONE_WAY)
def test_one_way_audio_is_alerted_before_the_bye_within_15_s(lab: Lab, name: str) -> None:
    call = lab.call(name)
    assert call.final_status == 200 and call.state == "completed"
    stopped = lab.last_rtp_ts(PAIRS[name].callee_ip)
    bye = lab.sip_ts(name, "BYE ")
    assert bye - stopped > 25.0  # the caller talked on for 28 s after the callee went quiet
    assert not lab.run.versions("high_jitter", call.call_id)  # the caller's one stream is clean
    at, first = lab.run.versions("one_way_audio", call.call_id)[0]
    assert first.in_progress and first.summary.endswith("(call in progress)")
    assert first.details["silent_direction"] == "callee_to_caller"
    # 7 s at its own ptime, no comfort noise offered: a brief sender that does not suppress silence
    assert first.details["sender_pace"] == "brief"
    assert at < bye
    s = RuleSettings()
    # its wait, then the next report of the call (every quiet_report_interval_s once one way is quiet)
    assert s.live_one_way_brief_quiet_s <= at - stopped < 15.0
    (final,) = lab.run.final("one_way_audio", call.call_id)
    assert final.alert_id == first.alert_id and not final.in_progress


def test_a_call_on_hold_and_a_silence_suppressing_callee_raise_nothing(lab: Lab) -> None:
    for name in ("hold", "silence_suppressed"):
        call = lab.call(name)
        assert call.final_status == 200 and call.state == "completed"
        assert not [a for _, a in lab.run.raised if a.call_id == call.call_id], name
    # the callee really went quiet while the caller's media flowed on
    held = lab.call("hold")
    assert lab.sip_ts("hold", "BYE ") - lab.last_rtp_ts(PAIRS["hold"].callee_ip) > 20.0
    assert held.requests.get("INVITE") == 2
    callee = [
        p for p in lab.packets if p.src == PAIRS["silence_suppressed"].callee_ip and p.sport == MEDIA_PORT
    ]
    gaps = [b.ts - a.ts for a, b in pairwise(callee)]
    assert sorted(gaps)[-2] > 11.0  # two 12 s silences (the CN packet opens each)


def test_answered_without_rtp_is_alerted_before_the_bye(lab: Lab) -> None:
    call = lab.call("no_media")
    assert call.final_status == 200 and call.answer_ts is not None
    assert not [p for p in lab.packets if p.sport == MEDIA_PORT and p.src in {PAIRS["no_media"].caller_ip}]
    at, first = lab.run.versions("no_media", call.call_id)[0]
    assert first.in_progress
    assert at < lab.sip_ts("no_media", "BYE ")
    assert at - call.answer_ts < 15.0
    (final,) = lab.run.final("no_media", call.call_id)
    assert final.alert_id == first.alert_id and not final.in_progress


def test_refused_call_is_alerted_at_its_final_response(lab: Lab) -> None:
    call = lab.call("refused")
    assert call.final_status == 503
    refused = lab.sip_ts("refused", "SIP/2.0 503")
    at, first = lab.run.versions("call_failed", call.call_id)[0]
    assert 0.0 <= at - refused < 1.0
    (final,) = lab.run.final("call_failed", call.call_id)
    assert final.alert_id == first.alert_id


def test_one_alert_per_problem_and_nothing_else(lab: Lab) -> None:
    ids = [a.alert_id for a in lab.run.report.alerts]
    assert len(ids) == len(set(ids))
    got = sorted((a.rule, a.source_ip) for a in lab.run.report.alerts)
    assert got == sorted(
        [
            ("call_failed", PAIRS["refused"].caller_ip),
            ("no_media", PAIRS["no_media"].caller_ip),
            *[("one_way_audio", PAIRS[name].caller_ip) for name in ONE_WAY],
        ]
    )
    assert not any(a.in_progress for a in lab.run.report.alerts)


@pytest.mark.kafka
def test_over_kafka_the_live_version_comes_first_and_one_alert_per_problem(
    lab: Lab, kafka_bootstrap: str
) -> None:
    """The same capture through the collector and detector services: what a consumer of alerts sees."""
    prefix = _prefix()
    code, log = finish(collector(kafka_bootstrap, prefix, lab.pcap))
    assert code == 0, log
    code, log = finish(detector(kafka_bootstrap, prefix, f"g{prefix}"))
    assert code == 0, log
    sent = [
        Alert.model_validate_json(v)
        for v, _ in read_topic(kafka_bootstrap, Topics.with_prefix(prefix).alerts)
    ]
    latest = {a.alert_id: a for a in sent}  # keyed by alert id: a consumer keeps the latest version
    assert latest == {a.alert_id: a for a in lab.run.report.alerts}
    mid_call = [i for i, a in latest.items() if a.rule in ("one_way_audio", "no_media")]
    assert len(mid_call) == len(ONE_WAY) + 1
    for alert_id in mid_call:
        versions = [a.in_progress for a in sent if a.alert_id == alert_id]
        assert versions == [True, False], (latest[alert_id].rule, versions)
    # raised at the 503, re-sent unchanged when the call record is finished: one alert downstream
    failed = [a for a in sent if a.rule == "call_failed"]
    assert failed and all(a == failed[0] for a in failed)
    assert failed[0].source_ip == PAIRS["refused"].caller_ip and not failed[0].in_progress
