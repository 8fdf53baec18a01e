"""The engine: runs every rule, categorises, remembers security incidents for later calls."""

from pathlib import Path

import pytest

from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules import RULE_IDS, RuleSettings
from callqual.schemas import Alert, MalformedSipEvent, SipMessageEvent
from tests.detector.rules.factories import CALLER, ctx, record, request, stream
from tests.shared_captures import PCAPS


def test_on_call_runs_rules_and_categorises() -> None:
    engine = RuleEngine(RuleSettings())
    alerts, category = engine.on_call(ctx(streams=[stream(mos=2.9, mean_jitter_ms=45.0)]))
    assert [a.rule for a in alerts] == ["one_way_audio", "low_mos", "high_jitter"]
    assert category == "one_way"
    alerts, category = engine.on_call(ctx())
    assert (alerts, category) == ([], "ok")
    c = engine.counters
    assert c.calls == 2 and c.calls_by_category == {"one_way": 1, "ok": 1}
    assert c.alerts_by_rule["low_mos"] == 1 and set(c.alerts_by_rule) == set(RULE_IDS)


def test_call_from_a_scanning_source_is_suspicious() -> None:
    engine = RuleEngine(RuleSettings())
    alerts = engine.on_sip(request("OPTIONS", ts=990.0, src=CALLER, user_agent="friendly-scanner"))
    assert [a.rule for a in alerts] == ["sip_scanner"]
    assert engine.on_call(ctx())[1] == "suspicious"
    # Long after the incident the source is no longer held against its calls.
    late = record(start_ts=990.0 + 3600.0 + 1.0, answer_ts=4592.0, end_ts=4620.0)
    assert engine.on_call(ctx(rec=late))[1] == "ok"
    # A call that ended before the incident started is not suspicious either.
    early = record(start_ts=900.0, answer_ts=901.0, end_ts=950.0)
    assert engine.on_call(ctx(rec=early))[1] == "ok"


def test_toll_fraud_marks_the_account_not_the_pbx() -> None:
    engine = RuleEngine(RuleSettings())
    pbx = ("198.51.100.10", 5060)
    invite = request(
        "INVITE", user="+88212345", ts=999.0, src=pbx, call_id="fraud", from_uri="sip:mallory@pbx"
    )
    assert [a.rule for a in engine.on_sip(invite)] == ["toll_fraud"]
    assert engine.on_call(ctx(rec=record(call_id="fraud", from_uri="sip:mallory@pbx")))[1] == "suspicious"
    assert engine.on_call(ctx(rec=record(call_id="honest", from_uri="sip:mallory-not@pbx")))[1] == "ok"
    assert engine.on_call(ctx(rec=record(call_id="other", from_uri="sip:mallory@pbx")))[1] == "suspicious"


def test_malformed_event_and_counters() -> None:
    engine = RuleEngine(RuleSettings())
    out: list[Alert] = []
    for i in range(12):
        ev = MalformedSipEvent(
            frame=i,
            ts=float(i),
            src_ip="192.0.2.9",
            src_port=5999,
            dst_ip="192.0.2.1",
            dst_port=5060,
            transport="udp",
            reason="sip.bad_start_line",
            excerpt="INVITE\x00garbage",
            size=40,
        )
        out += engine.on_malformed_event(ev)
    assert len(out) == 1
    assert out[0].evidence[0].src == "192.0.2.9:5999" and out[0].evidence[0].first_line == "INVITE\x00garbage"
    assert engine.counters.malformed == 12 and engine.counters.alerts_by_rule["malformed_sip"] == 1
    assert engine.flush() == []
    assert engine.counters.table_sizes["malformed_sip"] == 0


def test_disabled_rules() -> None:
    engine = RuleEngine(RuleSettings(disabled_rules=["low_mos", "malformed_sip"]))
    assert "low_mos" not in [r.id for r in engine.call_rules]
    assert engine.on_malformed(0.0, "192.0.2.9", "x", 1) == []
    with pytest.raises(ValueError, match="no_such_rule"):
        RuleEngine(RuleSettings(disabled_rules=["no_such_rule"]))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLQUAL_RULES_LOW_MOS_WARNING", "3.8")
    monkeypatch.setenv("CALLQUAL_RULES_TOLL_FRAUD_PREFIXES", '["0900"]')
    s = RuleSettings()
    assert s.low_mos_warning == 3.8 and s.toll_fraud_prefixes == ["0900"]


def _replay(path: Path) -> list[Alert]:
    from callqual.collector import collector as collector_mod
    from callqual.collector.capture import pcap_file as capture_mod

    assert path.exists(), f"{path}: the shared captures are missing"
    events: list[object] = []
    collector = collector_mod.Collector(events.append)
    with capture_mod.CaptureFile(path) as frames:
        for frame in frames:
            collector.feed(frame)
    collector.finish()
    engine = RuleEngine(RuleSettings())
    alerts: list[Alert] = []
    for e in events:
        if isinstance(e, SipMessageEvent):
            alerts += engine.on_sip(e)
        elif isinstance(e, MalformedSipEvent):
            alerts += engine.on_malformed_event(e)
    return alerts + engine.flush()


def test_real_capture_of_an_honest_phone_raises_no_security_alert() -> None:
    # aaa.pcap: one Nero SIPPS phone, 14 REGISTER 401 challenges spread over 26 minutes.
    assert _replay(PCAPS / "rtp-pcap/aaa.pcap") == []


def test_fuzzed_capture_raises_one_malformed_sip_alert() -> None:
    # The byte-mutated aaa.pcap from Wireshark's fuzz testing: 60 unparsable messages.
    alerts = _replay(PCAPS / "nDPI/fuzz-2006-06-26-2594.pcap")
    assert [(a.rule, a.source_ip) for a in alerts] == [("malformed_sip", "192.168.1.2")]
