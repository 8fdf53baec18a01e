"""A proxy relaying others' requests is never charged for them (issue 11, item 2)."""

from typing import Any

from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules import RuleSettings
from callqual.detector.rules.relay import RelayTracker
from callqual.schemas import Alert, MalformedSipEvent, SipMessageEvent
from tests.detector.rules.factories import request, response

ATTACKER = ("192.0.2.66", 5070)
PROXY = ("203.0.113.1", 5060)
UA = ("203.0.113.50", 5060)


def relayed(method: str, i: int, ts: float, user: str = "200", **kw: Any) -> list[SipMessageEvent]:
    """One request through the proxy, both legs seen, answered ``status`` by the UA and relayed back."""
    status = kw.pop("status", 486)
    common = {"call_id": f"c{i}", "cseq_num": 1, "from_tag": f"f{i}", **kw}
    return [
        request(method, user=user, ts=ts, src=ATTACKER, dst=PROXY, **common),
        response(100, method, ts=ts + 0.0001, src=PROXY, dst=ATTACKER, **common),
        request(method, user=user, ts=ts + 0.0002, src=PROXY, dst=UA, **common),
        response(status, method, ts=ts + 0.001, src=UA, dst=PROXY, to_tag="u", **common),
        response(status, method, ts=ts + 0.0012, src=PROXY, dst=ATTACKER, to_tag="u", **common),
    ]


def feed(engine: RuleEngine, events: list[SipMessageEvent]) -> list[Alert]:
    out: list[Alert] = []
    for e in events:
        out.extend(engine.on_sip(e))
    return out


def test_a_relayed_invite_flood_is_charged_to_its_origin_once() -> None:
    engine = RuleEngine(RuleSettings())
    events = [e for i in range(400) for e in relayed("INVITE", i, i * 0.01)]
    alerts = feed(engine, events)
    assert [(a.rule, a.source_ip) for a in alerts] == [("sip_flood", ATTACKER[0])]
    assert alerts[0].details["requests"] == 300, "counted once, not once per leg"
    assert all(ev.src.startswith(ATTACKER[0]) for ev in alerts[0].evidence)
    assert engine.counters.relayed == 400 * 2  # the relayed INVITE and the UA's answer to the proxy


def test_a_relayed_scan_names_the_scanner_not_the_proxy() -> None:
    engine = RuleEngine(RuleSettings(scanner_user_agents=[]))
    events = [e for i in range(60) for e in relayed("INVITE", i, i * 0.5, user=str(1000 + i), status=404)]
    alerts = feed(engine, events)
    assert {(a.rule, a.source_ip) for a in alerts} == {("sip_scanner", ATTACKER[0])}


def test_the_proxys_own_requests_still_count() -> None:
    """Keep-alive OPTIONS the proxy originates (its own Call-IDs) are its own traffic."""
    engine = RuleEngine(RuleSettings())
    own = [
        request("OPTIONS", ts=i * 0.01, src=PROXY, dst=UA, call_id=f"ka{i}", cseq_num=1) for i in range(400)
    ]
    assert [(a.rule, a.source_ip) for a in feed(engine, own)] == [("sip_flood", PROXY[0])]
    assert engine.counters.relayed == 0


def test_retransmissions_and_a_direct_sender_are_not_relays() -> None:
    tracker = RelayTracker(max_transactions=100, window_s=32.0)
    invite = request("INVITE", src=ATTACKER, dst=UA, call_id="x", cseq_num=1)
    assert not tracker.is_relayed(invite)
    assert not tracker.is_relayed(invite.model_copy(update={"ts": invite.ts + 0.5}))
    # the UA never received it from elsewhere before sending it: not a relay even with the same Call-ID
    back = request("INVITE", src=UA, dst=ATTACKER, call_id="x", cseq_num=1)
    assert tracker.is_relayed(back), "the UA had received this very transaction: it is forwarding it"
    other = request("INVITE", src=PROXY, dst=UA, call_id="x", cseq_num=1)
    assert not tracker.is_relayed(other), "the proxy never received it"
    assert not tracker.is_relayed(request("INVITE", src=PROXY, dst=UA, call_id="x", cseq_num=2))


def test_a_relay_is_recognised_only_within_the_window_and_the_bound() -> None:
    tracker = RelayTracker(max_transactions=2, window_s=32.0)
    first = request("INVITE", ts=0.0, src=ATTACKER, dst=PROXY, call_id="a", cseq_num=1)
    tracker.is_relayed(first)
    late = request("INVITE", ts=40.0, src=PROXY, dst=UA, call_id="a", cseq_num=1)
    assert not tracker.is_relayed(late)
    for n in range(3):
        tracker.is_relayed(
            request("INVITE", ts=41.0 + n, src=ATTACKER, dst=PROXY, call_id=f"b{n}", cseq_num=1)
        )
    assert tracker.evictions >= 2
    assert tracker.is_relayed(request("INVITE", ts=44.0, src=PROXY, dst=UA, call_id="b2", cseq_num=1))


def _bent(i: int, src: tuple[str, int], dst: tuple[str, int]) -> list[SipMessageEvent | MalformedSipEvent]:
    """A request that parses but carries a non-UTF-8 header: a malformed event, then the message."""
    where = {"src_ip": src[0], "src_port": src[1], "dst_ip": dst[0], "dst_port": dst[1]}
    return [
        MalformedSipEvent(
            frame=i,
            ts=i * 0.1,
            transport="udp",
            reason="sip.not_utf8",
            excerpt="INVITE sip:200@proxy SIP/2.0",
            size=400,
            call_id=f"fz{i}",
            cseq_num=1,
            cseq_method="INVITE",
            **where,
        ),
        request("INVITE", ts=i * 0.1, src=src, dst=dst, call_id=f"fz{i}", cseq_num=1),
    ]


def test_bent_requests_a_proxy_relays_are_the_fuzzers_malformed_sip_not_the_proxys() -> None:
    engine = RuleEngine(RuleSettings())
    alerts: list[Alert] = []
    for i in range(30):
        for ev in [*_bent(i, ATTACKER, PROXY), *_bent(i, PROXY, UA)]:
            if isinstance(ev, MalformedSipEvent):
                alerts += engine.on_malformed_event(ev)
            else:
                alerts += engine.on_sip(ev)
    assert [(a.rule, a.source_ip) for a in alerts] == [("malformed_sip", ATTACKER[0])]
    assert engine.counters.malformed == 60, "every parse error is still counted"


def test_guesses_relayed_to_an_upstream_registrar_are_the_guessers_brute_force() -> None:
    """REGISTERs relayed by the proxy to a registrar; its 401s come back through the proxy."""
    engine = RuleEngine(RuleSettings())
    registrar = ("203.0.113.60", 5060)
    events: list[SipMessageEvent] = []
    for i in range(40):
        common = {"call_id": "guess", "cseq_num": i + 1, "from_uri": "sip:1001@pbx", "to_uri": "sip:1001@pbx"}
        ts = i * 0.5
        events += [
            request("REGISTER", user="1001", ts=ts, src=ATTACKER, dst=PROXY, **common),
            request("REGISTER", user="1001", ts=ts + 0.001, src=PROXY, dst=registrar, **common),
            response(401, "REGISTER", ts=ts + 0.002, src=registrar, dst=PROXY, **common),
            response(401, "REGISTER", ts=ts + 0.003, src=PROXY, dst=ATTACKER, **common),
        ]
    alerts = feed(engine, events)
    assert [(a.rule, a.source_ip) for a in alerts] == [("register_bruteforce", ATTACKER[0])]


def test_a_bent_answer_straight_back_to_the_caller_is_no_relay() -> None:
    """zeek/invalid-content-length.pcap: INVITE A -> B, then B's 200 with a short body: B's own error."""
    tracker = RelayTracker(max_transactions=100, window_s=32.0)
    assert not tracker.is_relayed(request("INVITE", src=ATTACKER, dst=UA, call_id="x", cseq_num=1))
    bent_200 = MalformedSipEvent(
        frame=2,
        ts=1000.1,
        src_ip=UA[0],
        src_port=UA[1],
        dst_ip=ATTACKER[0],
        dst_port=ATTACKER[1],
        transport="udp",
        reason="sip.content_length_mismatch",
        excerpt="SIP/2.0 200 OK",
        size=300,
        call_id="x",
        cseq_num=1,
        cseq_method="INVITE",
    )
    assert not tracker.is_relayed_malformed(bent_200)
    assert tracker.relayed == 0
