"""``analyze --split`` runs most source rules in the collector's process: their alerts must land
in the detector at the very point of the event sequence where the one-process run raises them.

A call's ``suspicious`` reads the security marks recorded *before* the call is judged, so each
capture here puts a security alert and a call's judgement at the same point, where an alert
recorded one event early, one event late, or at the end before the drained calls, changes the
call's category. Each is analysed in one process and split, through the real fork and pipe.
"""

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.call_assembler import AssemblerConfig
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.source_rules import SourceRules
from callqual.detector.suspicion import SuspicionMarks
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.split import KEEP_FROM, run_split
from callqual.schemas import Alert, CallRecord, SipMessageEvent
from tests.collector.callcraft import CallCapture
from tests.pipeline.split_reports import json_report
from tests.shared_captures import PCAPS

T = TypeVar("T")

ATTACKER = "203.0.113.7"
CALLEE = ("10.0.0.2", 5060)


def _msg(first_line: str, call_id: str, cseq: str, src: str, *, to_tag: str = "", agent: str = "") -> bytes:
    """A SIP message from ``src`` to bob@10.0.0.2; the From user is the source's own."""
    head = [
        first_line,
        f"Via: SIP/2.0/UDP {src}:5060;branch=z9hG4bK{zlib.crc32(f'{call_id}{cseq}{first_line}'.encode()):x}",
        f"From: <sip:u{src.replace('.', '')}@{src}>;tag=f1",
        "To: <sip:bob@10.0.0.2>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        *([f"User-Agent: {agent}"] if agent else []),
        "Content-Length: 0",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _answered_call(cap: CallCapture, call_id: str, src: str, start: float, bye: float) -> None:
    """INVITE, 200, ACK, then BYE and its 200 at ``bye``: the call ends at ``bye``."""
    me = (src, 5060)
    cap.add(start, me, CALLEE, _msg("INVITE sip:bob@10.0.0.2 SIP/2.0", call_id, "1 INVITE", src))
    cap.add(start + 0.0625, CALLEE, me, _msg("SIP/2.0 200 OK", call_id, "1 INVITE", src, to_tag="b1"))
    cap.add(
        start + 0.125, me, CALLEE, _msg("ACK sip:bob@10.0.0.2 SIP/2.0", call_id, "1 ACK", src, to_tag="b1")
    )
    cap.add(bye, me, CALLEE, _msg("BYE sip:bob@10.0.0.2 SIP/2.0", call_id, "2 BYE", src, to_tag="b1"))
    cap.add(bye, CALLEE, me, _msg("SIP/2.0 200 OK", call_id, "2 BYE", src, to_tag="b1"))


def _reports(
    path: Path, config: AssemblerConfig | None = None, rules: RuleSettings | None = None
) -> tuple[bytes, bytes]:
    """The JSON report of ``path`` analysed in one process, and split."""
    return (
        json_report(path, split=False, rules=rules, config=config),
        json_report(path, split=True, rules=rules, config=config),
    )


def _call(report: bytes, call_id: str) -> CallRecord:
    return next(CallRecord.model_validate(c) for c in json.loads(report)["calls"] if c["call_id"] == call_id)


def _alerts(report: bytes, rule: str) -> list[Alert]:
    return [Alert.model_validate(a) for a in json.loads(report)["alerts"] if a["rule"] == rule]


def _would_mark(alert: Alert, call: CallRecord) -> bool:
    """Whether ``alert``, once recorded, names ``call`` (so only its timing keeps the call clean)."""
    marks = SuspicionMarks(10, 3600.0)
    marks.put(alert, alert.first_ts)
    return bool(marks.naming(call, float("inf")))


def test_the_split_runs_the_rules_before_the_kept_one_in_the_child() -> None:
    """The captures below need alerts from the child's rules: the scanner and the flood run there."""
    from callqual.detector.rules import SOURCE_RULES

    order = [r.id for r in SOURCE_RULES]
    assert order.index("sip_scanner") < order.index(KEEP_FROM)
    assert order.index("sip_flood") < order.index(KEEP_FROM)


@pytest.mark.parametrize("disabled", [[], [KEEP_FROM], ["sip_scanner", "malformed_sip"]])
def test_a_flood_alert_and_a_call_due_at_the_same_instant(tmp_path: Path, disabled: list[str]) -> None:
    """The flood's 300th INVITE comes exactly when the attacker's own answered call is due (its
    BYE + the 6 s linger): the one-process run records the alert, then judges the call, which is
    suspicious. An alert recorded one event late would leave the call clean. Also with the rule
    the detector keeps, or rules the child runs, switched off."""
    cap = CallCapture()
    _answered_call(cap, "call-a", ATTACKER, 1000.0, 1000.25)
    for n in range(298):  # with call-a's, 299 INVITEs up to ~1005.2, then a quiet second, so the
        ts = 1000.5 + n / 64  # expiry scan runs at the 300th, the one that crosses the threshold
        cap.add(
            ts,
            (ATTACKER, 5060),
            CALLEE,
            _msg("INVITE sip:bob@10.0.0.2 SIP/2.0", f"f{n}", "1 INVITE", ATTACKER),
        )
    cap.add(
        1006.25,
        (ATTACKER, 5060),
        CALLEE,
        _msg("INVITE sip:bob@10.0.0.2 SIP/2.0", "f298", "1 INVITE", ATTACKER),
    )
    one, split = _reports(cap.write(tmp_path / "flood.pcap"), rules=RuleSettings(disabled_rules=disabled))
    assert split == one
    (flood,) = _alerts(one, "sip_flood")
    assert flood.last_ts == 1006.25, "raised by the INVITE at the call's due time"
    assert _call(one, "call-a").category == "suspicious"


def test_an_alert_on_the_invite_that_evicts_a_call(tmp_path: Path) -> None:
    """A full call table (one call here): a scanner's INVITE evicts the attacker's earlier call
    before the rules see that INVITE, so the one-process run judges the evicted call without the
    scanner's alert. Recorded on arrival (one event early), the alert would make it suspicious."""
    cap = CallCapture()
    _answered_call(cap, "call-a", ATTACKER, 1000.0, 1001.0)
    scan = _msg("INVITE sip:bob@10.0.0.2 SIP/2.0", "scan-1", "1 INVITE", ATTACKER, agent="friendly-scanner")
    cap.add(1001.0, (ATTACKER, 5060), CALLEE, scan)
    one, split = _reports(cap.write(tmp_path / "evict.pcap"), AssemblerConfig(max_calls=1))
    assert split == one
    (scanner,) = _alerts(one, "sip_scanner")
    evicted = _call(one, "call-a")
    assert _would_mark(scanner, evicted), "the alert names the evicted call: only its timing keeps it clean"
    assert evicted.category != "suspicious"
    assert _call(one, "scan-1").category == "suspicious"


def test_a_scan_the_end_of_the_capture_reveals_comes_after_the_drained_calls(tmp_path: Path) -> None:
    """A host sweep still unanswered when the capture ends is alerted at the end (the scanner's
    flush), after the calls still open are drained: the attacker's ringing call is judged
    without it, in one process. Recorded when the child's end arrives, it would be suspicious."""
    cap = CallCapture()
    me = (ATTACKER, 5060)
    for n in range(12):  # OPTIONS to silent hosts, well inside the 5 s answer timeout
        options = _msg(f"OPTIONS sip:198.51.100.{n + 1} SIP/2.0", f"o{n}", "1 OPTIONS", ATTACKER)
        cap.add(1000.0 + n / 16, me, (f"198.51.100.{n + 1}", 5060), options)
    cap.add(1000.5, me, CALLEE, _msg("INVITE sip:bob@10.0.0.2 SIP/2.0", "call-r", "1 INVITE", ATTACKER))
    cap.add(1000.75, CALLEE, me, _msg("SIP/2.0 180 Ringing", "call-r", "1 INVITE", ATTACKER, to_tag="b1"))
    cap.add(1002.0, CALLEE, me, _msg("SIP/2.0 180 Ringing", "call-r", "1 INVITE", ATTACKER, to_tag="b1"))
    one, split = _reports(cap.write(tmp_path / "scan.pcap"))
    assert split == one
    (scanner,) = _alerts(one, "sip_scanner")
    assert scanner.details["trigger"] == "host_sweep"
    ringing = _call(one, "call-r")
    assert _would_mark(scanner, ringing), "the sweep names the call: only its timing keeps it clean"
    assert ringing.category != "suspicious"


def test_the_engine_counts_alike_split_or_not(tmp_path: Path) -> None:
    """Relayed copies skipped, alerts, evictions and table sizes per rule: the same counters."""
    counters = []
    for split in (False, True):
        pipeline = EmbeddedPipeline()
        with open_capture(PCAPS / "heplify/sip_tcp_websocket.pcap") as capture:
            if split:
                run_split(pipeline, capture)
            else:
                pipeline.run(capture)
            pipeline.finish()
        counters.append(pipeline.rules.counters)
    assert counters[1] == counters[0]
    assert counters[0].relayed > 0 and counters[0].sip_messages > 0
    assert list(counters[1].evictions) == list(counters[0].evictions)


def test_a_source_rule_failing_on_a_message_is_counted_as_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule's bug on one message: the frame's failure counted (``internal.*``), the message still
    in its call, the analysis going on: in the child as in the one-process detector."""

    def failing(
        method: Callable[[SourceRules, SipMessageEvent], T],
    ) -> Callable[[SourceRules, SipMessageEvent], T]:
        def on(self: SourceRules, event: SipMessageEvent) -> T:
            if event.frame == 3:
                raise ZeroDivisionError("a rule's bug")
            return method(self, event)

        return on

    monkeypatch.setattr(SourceRules, "on_sip", failing(SourceRules.on_sip))  # one process
    monkeypatch.setattr(SourceRules, "verdict", failing(SourceRules.verdict))  # the forked child
    one, split = _reports(PCAPS / "rtp-pcap/SIP_DTMF2.pcap")
    assert split == one
    summary = json.loads(one)["summary"]
    assert summary["errors"] == {"internal.ZeroDivisionError": 1}
    assert summary["sip_messages"] == 29 and summary["calls"] == 2
