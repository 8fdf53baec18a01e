"""Per-source security rules: windows, one alert per incident, bounded tables."""

import resource

import pytest

from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules import RuleSettings
from callqual.detector.rules.malformed_sip import MalformedSip
from callqual.detector.rules.register_bruteforce import RegisterBruteforce
from callqual.detector.rules.sip_flood import SipFlood
from callqual.detector.rules.sip_scanner import SipScanner
from callqual.detector.rules.toll_fraud import TollFraud
from callqual.schemas import Alert, SipMessageEvent
from tests.detector.rules.factories import request, response

ATTACKER = ("192.0.2.66", 5070)
PBX = ("203.0.113.1", 5060)
S = RuleSettings()


def run(
    rule: SipScanner | RegisterBruteforce | SipFlood | TollFraud, events: list[SipMessageEvent]
) -> list[Alert]:
    out: list[Alert] = []
    for e in events:
        out.extend(rule.observe(e))
    return out


def sweep(
    n: int, *, start: float = 0.0, step: float = 0.05, ua: str | None = "pbx", method: str = "OPTIONS"
) -> list[SipMessageEvent]:
    return [
        request(
            method,
            user=str(1000 + i),
            frame=i + 1,
            ts=start + i * step,
            src=ATTACKER,
            dst=PBX,
            call_id=f"scan-{i}",
            user_agent=ua,
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------- scanner
def host_sweep(
    n: int, *, start: float = 0.0, step: float = 0.01, src: tuple[str, int] = ATTACKER, user: str = "100"
) -> list[SipMessageEvent]:
    """svmap-style: one OPTIONS each to n addresses of a /24 (same user, a harmless User-Agent)."""
    return [
        request(
            "OPTIONS",
            user=user,
            frame=i + 1,
            ts=start + i * step,
            src=src,
            dst=(f"198.51.100.{i + 1}", 5060),
            call_id=f"probe-{i}",
            user_agent="Asterisk PBX 18",
        )
        for i in range(n)
    ]


def later(ts: float) -> SipMessageEvent:
    """Unrelated traffic that moves capture time on (an OPTIONS ping between two other hosts)."""
    return request("OPTIONS", frame=99_999, ts=ts, src=("10.9.9.9", 5060), dst=("10.9.9.8", 5060))


def test_sweep_of_200_extensions_fires_once() -> None:
    alerts = run(SipScanner(S), sweep(200))
    assert len(alerts) == 1
    a = alerts[0]
    assert a.rule == "sip_scanner" and a.source_ip == ATTACKER[0] and a.call_id is None
    assert a.details["trigger"] == "sweep" and a.details["distinct_users"] == 30
    assert a.first_ts == 0.0 and len(a.evidence) == S.evidence_limit


def test_sweep_threshold_boundary() -> None:
    assert run(SipScanner(S), sweep(29)) == []
    assert len(run(SipScanner(S), sweep(30))) == 1


def test_sweep_slower_than_window_does_not_fire() -> None:
    # 30 users, one every 2.1 s: never 30 inside 60 s.
    assert run(SipScanner(S), sweep(30, step=2.1)) == []


def test_reached_users_do_not_count() -> None:
    events: list[SipMessageEvent] = []
    for i, e in enumerate(sweep(100, method="REGISTER")):
        events.append(e)
        events.append(
            response(
                200, method="REGISTER", frame=1000 + i, ts=e.ts + 0.01, src=PBX, dst=ATTACKER, to_uri=e.to_uri
            )
        )
    assert run(SipScanner(S), events) == []


def test_known_scanner_user_agent_fires_on_first_message_then_once() -> None:
    alerts = run(SipScanner(S), sweep(200, ua="friendly-scanner"))
    assert len(alerts) == 1
    assert alerts[0].details["trigger"] == "user_agent" and alerts[0].details["tool"] == "friendly-scanner"
    assert alerts[0].evidence[0].headers["user-agent"] == "friendly-scanner"


def test_benign_user_agents_are_not_scanners() -> None:
    for ua in ("sipsak 0.9.6", "Zoiper rv2.10", "Ozeki VoIP SIP SDK", "Asterisk PBX 18"):
        assert run(SipScanner(S), sweep(3, ua=ua)) == [], ua


def test_new_incident_after_quiet_period_gets_new_id() -> None:
    rule = SipScanner(S)
    first = run(rule, sweep(40))
    second = run(rule, sweep(40, start=1000.0))
    assert len(first) == len(second) == 1 and first[0].alert_id != second[0].alert_id


def test_trusted_network_is_exempt_from_sweep() -> None:
    assert run(SipScanner(RuleSettings(trusted_networks=["192.0.2.0/24"])), sweep(100)) == []


def test_replay_gives_same_alert_ids() -> None:
    events = sweep(100)
    assert [a.alert_id for a in run(SipScanner(S), events)] == [
        a.alert_id for a in run(SipScanner(S), events)
    ]


# --------------------------------------------------------------- brute force
def reg_failures(n: int, status: int = 401, start: float = 0.0) -> list[SipMessageEvent]:
    return [
        response(
            status,
            method="REGISTER",
            frame=i,
            ts=start + i,
            src=PBX,
            dst=ATTACKER,
            call_id=f"r{i}",
            to_uri=f"sip:{100 + i % 3}@pbx",
        )
        for i in range(n)
    ]


def test_bruteforce_boundary_and_key_on_response_destination() -> None:
    assert run(RegisterBruteforce(S), reg_failures(9)) == []
    alerts = run(RegisterBruteforce(S), reg_failures(50, status=403))
    assert len(alerts) == 1
    a = alerts[0]
    assert a.source_ip == ATTACKER[0] and a.details["failures"] == 10 and a.details["registrar"] == PBX[0]
    assert a.details["distinct_users"] == 3


def test_bruteforce_ignores_healthy_challenge_response() -> None:
    events: list[SipMessageEvent] = []
    for e in reg_failures(30):
        events.append(e)
        events.append(
            response(200, method="REGISTER", frame=e.frame + 500, ts=e.ts + 0.1, src=PBX, dst=ATTACKER)
        )
    assert run(RegisterBruteforce(S), events) == []


def test_bruteforce_ignores_invite_challenges() -> None:
    events = [response(407, method="INVITE", ts=float(i), src=PBX, dst=ATTACKER) for i in range(50)]
    assert run(RegisterBruteforce(S), events) == []


# --------------------------------------------------------------------- flood
def test_flood_per_source_boundary() -> None:
    settings = RuleSettings(flood_per_source=100, flood_total=10_000)
    assert run(SipFlood(settings), sweep(99, step=0.05)) == []
    alerts = run(SipFlood(settings), sweep(500, step=0.01))
    assert len(alerts) == 1
    assert alerts[0].details["scope"] == "source" and alerts[0].details["requests_options"] == 100


def test_flood_details_count_every_flood_method_in_settings_order() -> None:
    """Per-method counters are made at a method's first request; the alert still lists each method."""
    settings = RuleSettings(flood_per_source=100, flood_total=10_000, flood_methods=["REGISTER", "OPTIONS"])
    (alert,) = run(SipFlood(settings), sweep(500, step=0.01))
    counts = {k: v for k, v in alert.details.items() if k.startswith("requests_")}
    assert list(counts.items()) == [("requests_register", 0), ("requests_options", 100)]


def test_flood_total_across_sources() -> None:
    settings = RuleSettings(flood_per_source=1000, flood_total=200)
    events = [
        request(
            "INVITE", user="x", ts=i * 0.01, src=(f"198.51.100.{i % 250}", 5060), dst=PBX, call_id=f"f{i}"
        )
        for i in range(400)
    ]
    alerts = run(SipFlood(settings), events)
    assert len(alerts) == 1
    assert alerts[0].source_ip is None and alerts[0].details["scope"] == "total"


def test_flood_ignores_in_dialog_methods() -> None:
    settings = RuleSettings(flood_per_source=10)
    events = [request("ACK", ts=i * 0.01, src=ATTACKER) for i in range(100)]
    assert run(SipFlood(settings), events) == []


# ---------------------------------------------------------------- toll fraud
def invite(account: str, dialled: str, ts: float, call_id: str) -> SipMessageEvent:
    return request(
        "INVITE",
        user=dialled,
        ts=ts,
        src=PBX,
        dst=("198.51.100.200", 5060),
        call_id=call_id,
        from_uri=f"sip:{account}@pbx.example.com",
    )


def test_toll_fraud_premium_destination() -> None:
    rule = TollFraud(S)
    assert (
        run(rule, [invite("alice", "004930123456", 0.0, "c1"), invite("alice", "+1-212-555-0100", 1.0, "c2")])
        == []
    )
    alerts = run(rule, [invite("alice", "00882-1234567", 2.0, "c3"), invite("alice", "+8821234", 3.0, "c4")])
    assert len(alerts) == 1
    a = alerts[0]
    assert a.details["trigger"] == "premium_destination" and a.details["prefix"] == "00882"
    assert a.details["account"] == "alice" and a.call_id == "c3" and a.source_ip == PBX[0]


def answer(account: str, call_id: str, ts: float, status: int = 200) -> SipMessageEvent:
    """The far end's response to an account's INVITE (it travels back to the PBX)."""
    return response(
        status,
        ts=ts,
        src=("198.51.100.200", 5060),
        dst=PBX,
        call_id=call_id,
        from_uri=f"sip:{account}@pbx.example.com",
        to_tag="far",
    )


def test_toll_fraud_concurrency_boundary() -> None:
    rule = TollFraud(S)
    events = [invite("bob", "2000", float(i), f"c{i}") for i in range(11)]
    assert run(rule, events) == [], "attempts are not calls until they are up"
    assert run(rule, [answer("bob", f"c{i}", 11.0 + i) for i in range(10)]) == []
    (a,) = run(rule, [answer("bob", "c10", 30.0)])
    assert a.details["trigger"] == "concurrent_calls" and a.details["concurrent_calls"] == 11
    assert a.source_ip == PBX[0], "the account's source, not the far end that answered"
    assert a.first_ts == 0.0 and a.call_id == "c10"


def test_toll_fraud_ringing_long_enough_counts_as_up() -> None:
    rule = TollFraud(S)
    events: list[SipMessageEvent] = []
    for i in range(11):
        events += [invite("bob", "2000", i * 0.1, f"c{i}"), answer("bob", f"c{i}", i * 0.1 + 0.05, 180)]
    assert run(rule, events) == []
    ring = S.toll_fraud_ring_min_s
    assert run(rule, [invite("bob", "2000", 1.0 + ring - 0.1, "c11")]) == [], "c10 has not rung long enough"
    (a,) = run(rule, [invite("bob", "2000", 1.0 + ring + 0.1, "c12")])
    assert a.details["concurrent_calls"] == 11


def test_toll_fraud_ignores_a_flood_of_refused_invites() -> None:
    """1,000 INVITEs from one account, each 100/180 then 486 within milliseconds: sip_flood's job."""
    rule = TollFraud(S)
    events: list[SipMessageEvent] = []
    for i in range(1000):
        t = i * 0.001
        events += [
            invite("1008", "2000", t, f"f{i}"),
            answer("1008", f"f{i}", t + 0.003, 100),
            answer("1008", f"f{i}", t + 0.006, 180),
            answer("1008", f"f{i}", t + 0.012, 486),
        ]
    # their responses interleave: at any instant a dozen attempts are in flight
    events.sort(key=lambda e: e.ts)
    assert run(rule, events) == []


def test_toll_fraud_ended_calls_do_not_count() -> None:
    rule = TollFraud(S)
    events: list[SipMessageEvent] = []
    for i in range(30):
        events.append(invite("carol", "2000", float(i), f"c{i}"))
        events.append(request("BYE", ts=i + 0.5, call_id=f"c{i}", from_uri="sip:carol@pbx", to_tag="t"))
    # Retransmitted INVITEs are not new calls.
    events += [invite("carol", "2000", 40.0, "same")] * 20
    assert run(rule, events) == []


def test_toll_fraud_authenticated_retry_is_one_call() -> None:
    settings = RuleSettings(toll_fraud_bucket_s=60.0, toll_fraud_spike_min_calls=3, toll_fraud_min_history=0)
    rule = TollFraud(settings)
    events: list[SipMessageEvent] = []
    for i in range(2):
        events.append(invite("erin", "2000", float(i), f"c{i}"))
        events.append(response(407, ts=i + 0.1, call_id=f"c{i}", from_uri="sip:erin@pbx"))
        events.append(invite("erin", "2000", i + 0.2, f"c{i}"))
        events.append(answer("erin", f"c{i}", i + 0.3))
    assert run(rule, events) == []  # 2 calls, not 4: below the 3-call spike minimum
    assert run(rule, [invite("erin", "2000", 3.0, "c3")]) == [], "not a call until it is up"
    assert len(run(rule, [answer("erin", "c3", 3.5)])) == 1


def _calls(account: str, starts: list[float], prefix: str, status: int = 200) -> list[SipMessageEvent]:
    """One call per start: INVITE, the far end's ``status``, and (when answered) a BYE 0.2 s later."""
    out: list[SipMessageEvent] = []
    for i, t in enumerate(starts):
        call_id = f"{prefix}{i}"
        out += [invite(account, "2000", t, call_id), answer(account, call_id, t + 0.01, status)]
        if status < 300:
            out.append(
                request("BYE", ts=t + 0.2, call_id=call_id, from_uri=f"sip:{account}@pbx", to_tag="far")
            )
    return sorted(out, key=lambda e: e.ts)


def test_toll_fraud_spike_vs_baseline() -> None:
    settings = RuleSettings(toll_fraud_bucket_s=60.0, toll_fraud_max_concurrent=1000)
    rule = TollFraud(settings)
    events = _calls("dave", [b * 60.0 + i for b in range(4) for i in range(4)], "b")
    assert run(rule, events) == []  # 4 calls per minute: the baseline
    alerts = run(rule, _calls("dave", [240.0 + i * 0.5 for i in range(40)], "s"))
    assert [a.details["trigger"] for a in alerts] == ["call_spike"]
    assert alerts[0].details["calls"] == 20  # max(20 min calls, 5 x baseline 4)
    assert alerts[0].source_ip == PBX[0]


def test_toll_fraud_no_spike_from_a_flood_of_refused_attempts() -> None:
    settings = RuleSettings(toll_fraud_bucket_s=60.0)
    rule = TollFraud(settings)
    assert run(rule, _calls("dave", [b * 60.0 + i for b in range(4) for i in range(4)], "b")) == []
    refused = _calls("dave", [240.0 + i * 0.01 for i in range(1000)], "f", status=486)
    assert run(rule, refused) == []


# ----------------------------------------------------------------- malformed
def test_malformed_boundary() -> None:
    rule = MalformedSip(S)
    out: list[Alert] = []
    for i in range(9):
        out += rule.observe_malformed(float(i), ATTACKER[0], "sip.bad_start_line", i)
    assert out == []
    out += rule.observe_malformed(9.0, ATTACKER[0], "sip.no_call_id", 9)
    for i in range(10, 100):
        out += rule.observe_malformed(float(i), ATTACKER[0], "sip.bad_start_line", i)
    assert len(out) == 1
    assert out[0].details["reasons"] == "sip.bad_start_line=9,sip.no_call_id=1"
    assert [e.frame for e in out[0].evidence] == [5, 6, 7, 8, 9]


# ------------------------------------------------------------ bounded tables
@pytest.mark.slow
def test_100k_distinct_sources_keep_tables_bounded() -> None:
    settings = RuleSettings(max_sources=1000)
    engine = RuleEngine(settings)
    base = 0
    for i in range(100_000):
        src = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        ev = SipMessageEvent.model_construct(
            kind="sip_message",
            schema_version=1,
            frame=i,
            ts=i * 0.01,
            src_ip=src,
            src_port=5060,
            dst_ip=PBX[0],
            dst_port=5060,
            transport="udp",
            first_line="INVITE sip:x@pbx SIP/2.0",
            is_request=True,
            method="INVITE",
            request_uri="sip:9@pbx",
            call_id=f"c{i}",
            to_uri="sip:9@pbx",
            from_uri=f"sip:u{i}@pbx",
            to_tag=None,
            user_agent=None,
            size=300,
            status_code=None,
            cseq_method="INVITE",
            cseq_num=1,
        )
        assert engine.on_sip(ev) == []
        engine.on_malformed(i * 0.01, src, "sip.bad_start_line", i)
        if i == 10_000:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    c = engine.counters
    for rule_id in ("sip_scanner", "sip_flood", "toll_fraud", "malformed_sip"):
        assert c.table_sizes[rule_id] <= 1000, rule_id
        assert c.evictions[rule_id] == 99_000, rule_id
    assert grown_kb < 20_000  # 90k more sources, peak memory flat (allow for allocator noise)
    assert c.sip_messages == 100_000 and c.malformed == 100_000


def test_idle_sources_expire_by_capture_time() -> None:
    rule = SipScanner(RuleSettings(source_idle_s=10.0))
    run(rule, sweep(5))
    assert rule.table_size == 1
    run(rule, [request("OPTIONS", ts=100.0, src=("198.51.100.1", 5060))])
    assert rule.table_size == 1 and rule.evictions == 1


# ------------------------------------------------------------------- host sweep
def test_host_sweep_fires_once_after_the_answer_timeout() -> None:
    rule = SipScanner(S)
    assert run(rule, host_sweep(40)) == []  # silence is not known yet
    alerts = run(rule, [later(10.0), later(11.0)])
    assert len(alerts) == 1
    a = alerts[0]
    assert a.source_ip == ATTACKER[0] and a.details["trigger"] == "host_sweep"
    assert a.details["silent_targets"] == 40
    assert a.first_ts == 0.0 and a.last_ts == 0.39
    assert [e.frame for e in a.evidence] == [1, 2, 3, 4, 5]


def test_host_sweep_threshold_boundary() -> None:
    n, timeout = S.scanner_silent_targets, S.scanner_answer_timeout_s
    assert run(SipScanner(S), [*host_sweep(n - 1), later(30.0)]) == []
    assert len(run(SipScanner(S), [*host_sweep(n), later(30.0)])) == 1
    # At `timeout` after the first probe only the first is known to be silent.
    rule = SipScanner(S)
    assert run(rule, [*host_sweep(n, step=0.5), later(timeout)]) == []
    assert len(run(rule, [later(timeout + 0.5 * (n - 1))])) == 1


def test_host_sweep_at_the_end_of_the_input() -> None:
    """No later message: probes older than T1 (0.5 s) before the last one count as silent at flush."""
    n = S.scanner_silent_targets
    rule = SipScanner(S)
    assert run(rule, [*host_sweep(n), later(0.6)]) == []
    (alert,) = rule.flush()
    assert alert.details["trigger"] == "host_sweep" and alert.details["silent_targets"] == n
    rule = SipScanner(S)
    assert run(rule, [*host_sweep(n), later(0.3)]) == []
    assert rule.flush() == []  # the last probes might still have been answered


def test_answered_targets_are_live_hosts_not_silence() -> None:
    """A proxy pinging 50 phones that answer (any status) is no scanner."""
    events: list[SipMessageEvent] = []
    for i, e in enumerate(host_sweep(50, src=PBX)):
        events.append(e)
        status = (200, 404, 403)[i % 3]
        events.append(
            response(
                status, method="OPTIONS", frame=500 + i, ts=e.ts + 0.02, src=(e.dst_ip, e.dst_port), dst=PBX
            )
        )
    assert run(SipScanner(S), [*events, later(20.0)]) == []


def test_targets_that_contacted_the_source_first_never_count() -> None:
    """A registrar pinging registered phones that went away: they registered with it first."""
    registrations = [
        request(
            "REGISTER",
            user=str(200 + i),
            frame=i + 1,
            ts=float(i) * 0.1,
            src=(f"198.51.100.{i + 1}", 5060),
            dst=PBX,
        )
        for i in range(30)
    ]
    pings = host_sweep(30, start=10.0, src=PBX)
    assert run(SipScanner(S), [*registrations, *pings, later(30.0)]) == []


def test_slow_host_sweep_outside_the_window_does_not_fire() -> None:
    assert run(SipScanner(S), [*host_sweep(20, step=10.0), later(300.0)]) == []


def test_host_sweep_from_a_trusted_network_is_exempt() -> None:
    rule = SipScanner(RuleSettings(trusted_networks=["192.0.2.0/24"]))
    assert run(rule, [*host_sweep(40), later(10.0)]) == []
