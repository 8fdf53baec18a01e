"""Kamailio relays a SIPp INVITE flood to a registered UA, the capture sees both legs (issue 11, item 2).

Every flood INVITE appears twice: attacker -> Kamailio, then Kamailio ->
the callee's UA (which refuses it, 486). Exactly one ``sip_flood``, for the
attacker; nothing for Kamailio's own address, nor for the UA. A fuzzer
(``FUZZER_IP``) then sends INVITEs with a non-UTF-8 header, which Kamailio
parses and relays as they are: ``malformed_sip`` for the fuzzer only.
"""

from __future__ import annotations

import re
import shutil
import sys
import time

import pytest

from callqual.detector.rules import SECURITY_RULES
from callqual.pipeline.embedded import analyze_file
from tests.detector.sip_lab import (
    BUSY_SCENARIO,
    CALLEE_IP,
    KAMAILIO_IP,
    SIPP_FLOOD_IP,
    SUBSCRIBERS,
    SipLab,
    kamailio_cfg,
    read_sip,
    register_scenario,
    stop,
)

pytestmark = pytest.mark.slow

FUZZER_IP = "127.0.0.30"
FUZZ_INVITES = 15
CALLS = 400
RATE = 100  # per second: 400 INVITEs in 4 s, over the 300-in-10-s threshold on both legs

FLOOD_TO_200 = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="invite flood at a registered user, through the proxy">
  <send><![CDATA[
INVITE sip:200@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:flood@[local_ip]>;tag=[pid]fl[call_number]
To: <sip:200@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:flood@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="486"/>
  <send><![CDATA[
ACK sip:200@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: <sip:flood@[local_ip]>;tag=[pid]fl[call_number]
To: <sip:200@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""


#: Runs in the namespace: INVITEs to 200 whose X-Bin header is Latin-1, not UTF-8 (sip.not_utf8).
FUZZER = r"""
import socket, sys, time
fuzzer, proxy, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((fuzzer, 5099))
for i in range(count):
    head = (
        f"INVITE sip:200@{proxy} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {fuzzer}:5099;branch=z9hG4bKfz{i}\r\n"
        f"From: <sip:fz@{fuzzer}>;tag=fz{i}\r\n"
        f"To: <sip:200@{proxy}>\r\n"
        f"Call-ID: fz{i}@{fuzzer}\r\n"
        "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    )
    s.sendto(head.encode() + b"X-Bin: caf\xe9\r\nContent-Length: 0\r\n\r\n", (proxy, 5060))
    time.sleep(0.02)
"""


def _sipp(*args: str) -> list[str]:
    return ["sipp", *args, "-nostdin", "-timeout", "30s", "-trace_err"]


def test_kamailio_relaying_a_flood_is_not_the_attacker(tmp_path_factory: pytest.TempPathFactory) -> None:
    for tool in ("kamailio", "tcpdump", "sipp", "sipsak"):
        assert shutil.which(tool), f"{tool} missing: run ./scripts/setup"
    work = tmp_path_factory.mktemp("relayed_flood")
    pcap = work / "relayed.pcap"
    (work / "kamailio.cfg").write_text(kamailio_cfg(), encoding="utf-8")
    (work / "busy.xml").write_text(BUSY_SCENARIO, encoding="utf-8")
    (work / "register.xml").write_text(
        register_scenario("200", SUBSCRIBERS["200"], f"{CALLEE_IP}:5080"), encoding="utf-8"
    )
    (work / "flood.xml").write_text(FLOOD_TO_200, encoding="utf-8")
    lab = SipLab(work, ns=f"cqrelay{time.monotonic_ns() % 100000}")
    lab.create()
    try:
        dump = lab.start(
            "tcpdump",
            *("tcpdump", "-i", "lo", "-U", "-s", "0", "-B", "16384", "-w", str(pcap), "udp"),
            ready="listening on",
        )
        kamailio = lab.start(
            "kamailio", "kamailio", "-f", "kamailio.cfg", "-DD", "-E", "-P", str(work / "k.pid")
        )
        for _ in range(20):  # bounded: Kamailio answers an OPTIONS ping within 10 s
            ping = lab.run("ping", "sipsak", "--local-ip", "127.0.0.1", "-s", f"sip:{KAMAILIO_IP}", timeout=5)
            if ping.returncode == 0:
                break
            time.sleep(0.5)
        assert ping.returncode == 0, ping.output
        busy = lab.start("busy", *_sipp("-sf", "busy.xml", "-i", CALLEE_IP, "-p", "5080"))
        reg = lab.run(
            "register",
            *_sipp(f"{KAMAILIO_IP}:5060", "-sf", "register.xml", "-i", CALLEE_IP, "-p", "5081", "-m", "1"),
        )
        assert reg.returncode == 0, reg.output
        flood = lab.run(
            "flood",
            *_sipp(f"{KAMAILIO_IP}:5060", "-sf", "flood.xml", "-i", SIPP_FLOOD_IP, "-p", "5092"),
            *("-m", str(CALLS), "-r", str(RATE), "-l", str(CALLS), "-recv_timeout", "5000"),
            timeout=60,
        )
        assert flood.returncode == 0, flood.output
        fuzz = lab.run(
            "fuzzer", sys.executable, "-c", FUZZER, FUZZER_IP, KAMAILIO_IP, str(FUZZ_INVITES), timeout=30
        )
        assert fuzz.returncode == 0, fuzz.output
        time.sleep(1.5)  # tcpdump hands over its last partly filled block after its 1 s timeout
        stop(busy)
        stop(kamailio)
        stats = stop(dump)
        assert re.search(r"^0 packets dropped by kernel", stats, re.M), stats
    finally:
        lab.destroy()

    packets = read_sip(pcap)
    first_leg = [p for p in packets if p.src == SIPP_FLOOD_IP and p.first_line.startswith("INVITE")]
    second_leg = [
        p for p in packets if (p.src, p.dst) == (KAMAILIO_IP, CALLEE_IP) and p.first_line.startswith("INVITE")
    ]
    fuzzed = [p for p in packets if p.src == FUZZER_IP and p.first_line.startswith("INVITE")]
    assert len(first_leg) == CALLS and len(fuzzed) == FUZZ_INVITES
    assert len(second_leg) == CALLS + FUZZ_INVITES, "the span saw both legs of every INVITE"

    report = analyze_file(pcap)
    assert report.summary.errors["sip.not_utf8"] == 2 * FUZZ_INVITES, "Kamailio relayed every bent INVITE"
    # the relayed INVITEs and the UA's answers to Kamailio (180, 486), each skipped and counted
    assert report.summary.skipped["sip.relayed"] >= 3 * CALLS
    (malformed,) = [a for a in report.alerts if a.rule == "malformed_sip"]
    assert malformed.source_ip == FUZZER_IP
    floods = [a for a in report.alerts if a.rule == "sip_flood"]
    assert [(a.source_ip, a.details["scope"]) for a in floods] == [(SIPP_FLOOD_IP, "source")]
    assert all(ev.src.split(":")[0] == SIPP_FLOOD_IP for ev in floods[0].evidence)
    security = {(a.rule, a.source_ip) for a in report.alerts if a.rule in SECURITY_RULES}
    assert not {src for _, src in security} & {KAMAILIO_IP, CALLEE_IP, None}, security
