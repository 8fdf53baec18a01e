"""A real SIPp flood of INVITEs from one account, each refused 486 at once: sip_flood, not toll_fraud.

Issue 11, item 3: attempts refused within milliseconds are not concurrent
calls. SIPp floods a SIPp UAS that rings briefly and answers 486 Busy Here,
in a private namespace (:mod:`tests.detector.sip_lab`), captured by tcpdump.
Ringing 40 ms at 500 INVITEs/s keeps about 20 attempts in flight at once:
counted as concurrent calls, that was "account 1008 has 11 concurrent calls".
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from callqual.pipeline.embedded import analyze_file
from tests.detector.sip_lab import BUSY_SCENARIO, CALLEE_IP, SIPP_FLOOD_IP, SipLab, read_sip, stop

pytestmark = pytest.mark.slow

CALLS = 1000
RATE = 500  # per second
ACCOUNT = "1008"

FLOOD_UAC = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="one account floods INVITEs">
  <send><![CDATA[
INVITE sip:2[call_number]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{ACCOUNT}@[local_ip]>;tag=[pid]fl[call_number]
To: <sip:2[call_number]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{ACCOUNT}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="180" optional="true"/>
  <recv response="486"/>
  <send><![CDATA[
ACK sip:2[call_number]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: <sip:{ACCOUNT}@[local_ip]>;tag=[pid]fl[call_number]
To: <sip:2[call_number]@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""


def test_a_flood_of_refused_invites_is_a_flood_not_toll_fraud(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for tool in ("tcpdump", "sipp"):
        assert shutil.which(tool), f"{tool} missing: run ./scripts/setup"
    work = tmp_path_factory.mktemp("refused_flood")
    pcap = work / "flood.pcap"
    (work / "busy.xml").write_text(BUSY_SCENARIO, encoding="utf-8")
    (work / "flood.xml").write_text(FLOOD_UAC, encoding="utf-8")
    lab = SipLab(work, ns=f"cqbusy{time.monotonic_ns() % 100000}")
    lab.create()
    try:
        dump = lab.start(
            "tcpdump",
            *("tcpdump", "-i", "lo", "-U", "-s", "0", "-B", "16384", "-w", str(pcap), "udp"),
            ready="listening on",
        )
        busy = lab.start(
            "busy", "sipp", "-sf", "busy.xml", "-i", CALLEE_IP, "-p", "5080", "-nostdin", "-trace_err"
        )
        time.sleep(0.5)
        flood = lab.run(
            "flood",
            *("sipp", f"{CALLEE_IP}:5080", "-sf", "flood.xml", "-i", SIPP_FLOOD_IP, "-p", "5092"),
            *(
                "-m",
                str(CALLS),
                "-r",
                str(RATE),
                "-l",
                str(CALLS),
                "-nostdin",
                "-timeout",
                "30s",
                "-trace_err",
            ),
            timeout=60,
        )
        assert flood.returncode == 0, flood.output
        time.sleep(1.5)  # tcpdump hands over its last partly filled block after its 1 s timeout
        stop(busy)
        stats = stop(dump)
        assert re.search(r"^0 packets dropped by kernel", stats, re.M), stats
    finally:
        lab.destroy()

    packets = read_sip(pcap)
    invites = [p for p in packets if p.src == SIPP_FLOOD_IP and p.first_line.startswith("INVITE")]
    refused = [p for p in packets if p.dst == SIPP_FLOOD_IP and p.first_line.startswith("SIP/2.0 486")]
    assert len(invites) == len(refused) == CALLS
    report = analyze_file(pcap)
    assert {c.final_status for c in report.calls} == {486}
    fired = {(a.rule, a.source_ip) for a in report.alerts if a.rule in ("sip_flood", "toll_fraud")}
    assert fired == {("sip_flood", SIPP_FLOOD_IP)}, [a.summary for a in report.alerts]
