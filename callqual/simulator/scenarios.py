"""Named scenarios: which calls a capture contains and what goes wrong in each.

A scenario is data (a list of specs) built from a seeded ``random.Random``
and its options; it never touches packets. Add one by writing a builder and
registering it in ``SCENARIOS``.
"""

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from callqual.simulator import anomalies, incidents, malformed
from callqual.simulator.impairments import JitterSpec, LossSpec
from callqual.simulator.labels import Fault
from callqual.simulator.sip_messages import SipParty
from callqual.simulator.spec import AuthMode, CallSpec, MediaSpec, ScenarioCalls, TransactionSpec

OptionValue = int | float | str | bool
Options = Mapping[str, OptionValue]

DOMAIN = "voip.example.net"
#: 2024-03-04 09:00:00 UTC: a fixed, plausible business-hours capture start.
DEFAULT_EPOCH = 1_709_542_800
#: 2024-03-04 00:00:00 UTC: the 'day' scenario spans a whole (Monday) day from midnight.
DAY_EPOCH = 1_709_510_400
_HOUR = 3600.0

_PHONE_UAS = ("Yealink SIP-T46U 108.86.0.20", "Polycom/6.4.3 VVX-450", "Grandstream GXP2170 1.0.11.23")
_PBX_UA = "Asterisk PBX 20.5.0"
_CARRIER_UA = "Sonus SBC 11.01"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    build: Callable[[random.Random, Options], ScenarioCalls]
    defaults: dict[str, OptionValue] = field(default_factory=dict)
    epoch: int = DEFAULT_EPOCH

    def resolve(self, options: Mapping[str, object]) -> dict[str, OptionValue]:
        """Defaults overridden by ``options`` (coerced to the default's type); unknown names are refused.

        Coercion lets a CLI pass every option as a string.
        """
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"scenario {self.name!r} has no option {', '.join(unknown)} (allowed: {allowed})"
            )
        resolved = dict(self.defaults)
        for name, value in options.items():
            resolved[name] = _coerce(self.defaults[name], value, name)
        return resolved


def _coerce(default: OptionValue, value: object, name: str) -> OptionValue:
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"option {name!r}: expected {type(default).__name__}, got {value!r}")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return str(value)


def _phone(user: str, display: str, ip: str, rng: random.Random) -> SipParty:
    return SipParty(user, display, ip, DOMAIN, rng.choice(_PHONE_UAS))


def _pair(n: int, rng: random.Random) -> tuple[SipParty, SipParty]:
    """Caller phone and callee on distinct hosts, so every call has its own IP pair."""
    caller = _phone(f"{1000 + n}", f"User {1000 + n}", f"10.1.{n // 200}.{10 + n % 200}", rng)
    callee = _phone(f"{2000 + n}", f"Ext {2000 + n}", f"10.2.{n // 200}.{10 + n % 200}", rng)
    return caller, callee


def build_demo(rng: random.Random, options: Options) -> ScenarioCalls:
    """A minute of an office PBX: every category, overlapping calls, under 3 MB."""
    calls: list[CallSpec] = []

    def add(start: float, codec: str, description: str, **kwargs: Any) -> None:
        caller, callee = _pair(len(calls), rng)
        fields: dict[str, Any] = {
            "pdd_s": round(rng.uniform(0.6, 2.0), 3),
            "ring_s": round(rng.uniform(1.5, 4.0), 3),
            "talk_s": 12.0,
        }
        fields.update(kwargs)
        calls.append(replace(CallSpec(start, caller, callee, codec, description=description), **fields))

    add(0.5, "PCMU", "normal G.711 u-law call with DTMF 1-2-3-#", dtmf="123#")
    add(
        2.0,
        "PCMA",
        "normal G.711 A-law call from a carrier, fragmented INVITE",
        large_invite=True,
        offer=("PCMA", "PCMU", "G722", "G729", "GSM", "iLBC", "speex", "opus"),
    )
    add(4.0, "G729", "normal G.729 call, BYE from the callee", bye_from_callee=True)
    add(6.0, "opus", "normal Opus call with 183 early media", early_media=True)
    add(
        8.0,
        "PCMU",
        "5% random packet loss both ways",
        talk_s=15.0,
        media=MediaSpec(loss=LossSpec(random_pct=5.0)),
    )
    add(
        10.0,
        "PCMA",
        "Gilbert-Elliott burst loss (p=0.02, r=0.25, ~7.4%)",
        talk_s=15.0,
        media=MediaSpec(loss=LossSpec(burst=(0.02, 0.25))),
    )
    add(
        12.0,
        "PCMU",
        "heavy jitter, 40 ms standard deviation, with reordering",
        media=MediaSpec(jitter=JitterSpec(std_ms=40.0, reorder=True)),
    )
    add(14.0, "G729", "one-way audio: the callee sends no RTP, only RTCP RR", media=MediaSpec(one_way=True))
    add(16.0, "PCMU", "answered but no RTP at all", talk_s=8.0, media=MediaSpec(no_media=True))
    add(26.0, "PCMU", "long post-dial delay: 8 s until 180 Ringing", pdd_s=8.0)
    add(30.0, "PCMA", "INVITE retransmitted twice (timer A) before 100 Trying", invite_retransmissions=2)
    add(
        36.0,
        "G729",
        "normal call with SIP over TCP, INVITE spans two segments",
        transport="TCP",
        large_invite=True,
        talk_s=10.0,
    )
    add(34.0, "PCMA", "407 challenge answered, then a normal call", auth="challenge_ok", talk_s=8.0)
    failures: list[tuple[int, str, dict[str, Any]]] = [
        (404, "404 Not Found: unallocated number", {}),
        (486, "486 Busy Here after ringing", {}),
        (487, "caller gives up: CANCEL, 200 OK, 487 Request Terminated", {"ring_s": 6.0}),
        (503, "503 Service Unavailable from the trunk", {}),
        (603, "603 Decline by the callee", {}),
        (480, "480 Temporarily Unavailable after ringing out", {"ring_s": 8.0}),
        (403, "403 Forbidden: caller not allowed to dial out", {}),
        (488, "488 Not Acceptable Here: G.729-only offer refused", {}),
    ]
    for n, (status, description, extra) in enumerate(failures):
        codec = "G729" if status == 488 else "PCMU"
        add(3.0 + 3.5 * n, codec, description, final_status=status, **extra)
    add(38.0, "PCMU", "407 auth loop: every credential is refused", auth="loop_407")
    add(44.0, "PCMA", "401 auth loop: every credential is refused", auth="loop_401")

    pbx = SipParty("pbx", "PBX", "10.0.0.5", DOMAIN, _PBX_UA)
    trunk = SipParty("trunk", "Trunk", "192.0.2.10", "carrier.example", _CARRIER_UA)
    phone = _phone("1099", "Reception", "10.1.9.99", rng)
    transactions = [
        TransactionSpec(
            0.1, "REGISTER", phone, pbx, challenge=True, description="REGISTER with 401 challenge"
        ),
        *(
            TransactionSpec(t, "OPTIONS", pbx, trunk, description="trunk keepalive")
            for t in (0.2, 30.2, 60.2)
        ),
    ]
    scanner_ip = "203.0.113.66"
    for n, ext in enumerate(("100", "101", "102", "1000", "1001", "200")):
        target = SipParty(ext, ext, scanner_ip, DOMAIN, "friendly-scanner", port=5070 + n)
        known = ext.startswith("10") and len(ext) == 4
        transactions.append(
            TransactionSpec(
                50.0 + 0.25 * n,
                "REGISTER",
                target,
                pbx,
                challenge=known,
                final_status=403 if known else 404,
                suspicious=True,
                description="SIPVicious-style extension scan",
            )
        )
    return ScenarioCalls(calls=calls, transactions=transactions)


def build_clean(rng: random.Random, options: Options) -> ScenarioCalls:
    """Normal calls only: the negative control (no rule should fire)."""
    codecs = ("PCMU", "PCMA", "G729", "opus")
    calls = []
    for n in range(int(options["calls"])):
        caller, callee = _pair(n, rng)
        calls.append(
            CallSpec(
                start_s=round(n * 2.0 + rng.uniform(0, 1.5), 3),
                caller=caller,
                callee=callee,
                codec=codecs[n % len(codecs)],
                pdd_s=round(rng.uniform(0.5, 2.0), 3),
                ring_s=round(rng.uniform(1.0, 4.0), 3),
                talk_s=float(options["duration"]),
                description="normal call",
            )
        )
    return ScenarioCalls(calls=calls)


def build_impaired(rng: random.Random, options: Options) -> ScenarioCalls:
    """A sweep of one impairment per call, for tuning detector thresholds against known inputs."""
    sweep: list[tuple[str, MediaSpec]] = [
        *(
            (f"{pct:g}% random loss", MediaSpec(loss=LossSpec(random_pct=pct)))
            for pct in (1.0, 3.0, 5.0, 10.0)
        ),
        *(
            (f"burst loss p={p:g} r={r:g}", MediaSpec(loss=LossSpec(burst=(p, r))))
            for p, r in ((0.01, 0.5), (0.03, 0.3), (0.05, 0.15))
        ),
        *(
            (f"jitter {ms:g} ms, order kept", MediaSpec(jitter=JitterSpec(std_ms=ms)))
            for ms in (10.0, 30.0, 60.0)
        ),
        ("jitter 15 ms with reordering", MediaSpec(jitter=JitterSpec(std_ms=15.0, reorder=True))),
        (
            "3% loss and 30 ms jitter",
            MediaSpec(loss=LossSpec(random_pct=3.0), jitter=JitterSpec(std_ms=30.0)),
        ),
    ]
    calls = []
    for n, (description, media) in enumerate(sweep):
        caller, callee = _pair(n, rng)
        calls.append(
            CallSpec(
                start_s=round(n * 1.5, 3),
                caller=caller,
                callee=callee,
                codec=("PCMU", "PCMA")[n % 2],
                pdd_s=round(rng.uniform(0.5, 1.5), 3),
                ring_s=round(rng.uniform(1.0, 3.0), 3),
                talk_s=float(options["duration"]),
                media=media,
                description=description,
            )
        )
    return ScenarioCalls(calls=calls)


def build_load(rng: random.Random, options: Options) -> ScenarioCalls:
    """N concurrent G.711 calls starting within the first second, for throughput benchmarks."""
    calls = []
    for n in range(int(options["calls"])):
        caller, callee = _pair(n, rng)
        calls.append(
            CallSpec(
                start_s=round(rng.uniform(0.0, 1.0), 6),
                caller=caller,
                callee=callee,
                codec=str(options["codec"]),
                pdd_s=round(rng.uniform(0.2, 0.8), 3),
                ring_s=round(rng.uniform(0.2, 1.0), 3),
                talk_s=float(options["duration"]),
                media=MediaSpec(rtcp=bool(options["rtcp"])),
                description="load call",
            )
        )
    return ScenarioCalls(calls=calls)


def _site() -> incidents.Site:
    return incidents.Site(
        pbx=SipParty("pbx", "PBX", "10.0.0.5", DOMAIN, _PBX_UA),
        trunk=SipParty("trunk", "Trunk", "192.0.2.10", "carrier.example", _CARRIER_UA),
        domain=DOMAIN,
    )


def _security_incidents(out: ScenarioCalls, rng: random.Random, t0: float, gap_s: float) -> None:
    """One of each attack, ``gap_s`` apart from ``t0``, each from its own source address.

    The gap exceeds the rules' incident quiet time and windows, so every
    incident is judged on its own, as it would be on a real day.
    """
    site = _site()
    sweeps = (
        ("203.0.113.66", rng.choice(incidents.SCANNER_USER_AGENTS[:2]), "OPTIONS", 250),
        ("203.0.113.67", rng.choice(incidents.SCANNER_USER_AGENTS[2:]), "INVITE", 120),
        ("203.0.113.68", incidents.DISGUISED_USER_AGENT, "REGISTER", 200),
    )
    t = t0
    for ip, ua, method, n in sweeps:
        incidents.scanner_sweep(
            out, rng, site=site, start_s=t, ip=ip, user_agent=ua, method=method, extensions=n
        )
        t += gap_s
    incidents.register_bruteforce(
        out, rng, site=site, start_s=t, ip="203.0.113.200", users=["1001", "1002", "admin"], attempts=120
    )
    t += gap_s
    incidents.invite_flood(out, rng, site=site, start_s=t, ip="198.51.100.50", requests=720)
    t += gap_s
    incidents.toll_fraud(out, rng, site=site, start_s=t, ip="198.51.100.77", account="2201", calls=14)
    t += gap_s
    # A compromised office phone: a few premium calls, no concurrency.
    incidents.toll_fraud(
        out, rng, site=site, start_s=t, ip="10.1.250.5", account="1505", calls=2, spacing_s=60.0
    )


def build_security(rng: random.Random, options: Options) -> ScenarioCalls:
    """A handful of normal calls, then a scan of each kind, a brute force, a flood and toll fraud."""
    out = build_clean(rng, {"calls": int(options["calls"]), "duration": 10.0})
    _security_incidents(out, rng, t0=30.0, gap_s=float(options["gap"]))
    return out


_DAY_CODECS = ("PCMU", "PCMA", "G729", "opus")
_DAY_CODEC_WEIGHTS = (0.4, 0.3, 0.15, 0.15)
_USER_OUTCOMES = (486, 487, 603)
_FAILURES = (404, 480, 503, 403, 488, 500)
_DROP_REASON = 'Q.850;cause=38;text="Network out of order"'


def _business_hours(rng: random.Random) -> float:
    """A start time (s since midnight) with the usual office peak in the late morning."""
    return round(rng.triangular(7.5, 19.0, 10.5) * _HOUR, 3)


def _day_call(n: int, start_s: float, rng: random.Random, description: str, **kwargs: Any) -> CallSpec:
    """A normal call of the 'day' (varied codec, timing, who hangs up); ``kwargs`` impair it."""
    caller, callee = _pair(n, rng)
    auth: AuthMode = "challenge_ok" if rng.random() < 0.15 else "none"
    fields: dict[str, Any] = {
        "pdd_s": round(rng.uniform(0.4, 2.5), 3),
        "ring_s": round(rng.uniform(1.0, 8.0), 3),
        "talk_s": round(min(anomalies.DAY_MAX_TALK_S, max(4.0, rng.lognormvariate(2.9, 0.6))), 3),
        "bye_from_callee": rng.random() < 0.4,
        "early_media": rng.random() < 0.1,
        "auth": auth,
        "large_invite": rng.random() < 0.05,
    }
    if rng.random() < 0.3:
        fields["media"] = MediaSpec(jitter=JitterSpec(std_ms=round(rng.uniform(1.0, 6.0), 2)))
    fields.update(kwargs)
    codec = fields.pop("codec", None) or rng.choices(_DAY_CODECS, _DAY_CODEC_WEIGHTS)[0]
    return replace(CallSpec(start_s, caller, callee, codec, description=description), **fields)


def _faulty(kind: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """(description, CallSpec overrides) of one call carrying the quality or failure fault ``kind``.

    Magnitudes sit clearly on one side of the rule thresholds (loss 3-5 %
    for packet_loss without dragging G.711 below MOS 3.6; 20 % for low MOS),
    so the labels say unambiguously which rule should fire.
    """
    talk = round(rng.uniform(20.0, 40.0), 3)
    g711 = rng.choice(("PCMU", "PCMA"))
    if kind == "random_loss":
        pct = round(rng.uniform(3.0, 5.0), 2)
        return f"{pct}% random loss", {"codec": g711, "talk_s": talk, "media": MediaSpec(loss=LossSpec(pct))}
    if kind == "burst_loss":
        loss = LossSpec(burst=(0.015, 0.35))
        return "burst loss p=0.015 r=0.35", {"codec": g711, "talk_s": talk, "media": MediaSpec(loss=loss)}
    if kind == "heavy_loss":
        pct = round(rng.uniform(20.0, 25.0), 2)
        codec = rng.choice(("PCMU", "PCMA", "G729"))
        return f"{pct}% random loss", {"codec": codec, "talk_s": talk, "media": MediaSpec(loss=LossSpec(pct))}
    if kind == "reordering":
        jitter = JitterSpec(std_ms=round(rng.uniform(40.0, 60.0), 1), reorder=True)
        return "heavy jitter with reordering", {
            "codec": g711,
            "talk_s": talk,
            "media": MediaSpec(jitter=jitter),
        }
    if kind == "one_way_audio":
        return "one-way audio", {"talk_s": talk, "media": MediaSpec(one_way=True)}
    if kind == "no_media":
        return "answered, no RTP", {"talk_s": talk, "media": MediaSpec(no_media=True)}
    if kind == "long_post_dial_delay":
        return "long post-dial delay", {"pdd_s": round(rng.uniform(6.0, 10.0), 3)}
    if kind == "sip_retransmissions":
        return "INVITE retransmitted", {"invite_retransmissions": rng.choice((2, 3))}
    if kind == "dropped_call":
        return "dropped by the network (Q.850 38)", {"bye_reason": _DROP_REASON, "talk_s": talk}
    if kind == "call_failed":
        status = rng.choice(_FAILURES)
        return f"failed with {status}", {"final_status": status, "auth": "none"}
    if kind == "auth_loop":
        loop: AuthMode = rng.choice(("loop_401", "loop_407"))
        return f"auth loop ({loop})", {"auth": loop}
    if kind == "ip_fragmentation":
        return "carrier INVITE past the MTU", {"large_invite": True}
    raise ValueError(kind)  # pragma: no cover - the kinds are a closed list


_FAULT_KINDS = (
    "random_loss",
    "burst_loss",
    "heavy_loss",
    "reordering",
    "one_way_audio",
    "no_media",
    "long_post_dial_delay",
    "sip_retransmissions",
    "dropped_call",
    "call_failed",
    "auth_loop",
    "ip_fragmentation",
)


def _anomaly(kind: int, rng: random.Random) -> tuple[float, str, dict[str, Any]]:
    """(start, description, overrides) of a call no rule names but unlike any normal call.

    Each kind combines several individually plausible values (a rare codec,
    an odd hour, an unusual duration or setup time), all inside every rule
    threshold: the learned model's job, not the rules'.
    """
    model: tuple[Fault, ...] = ("model_anomaly",)
    base: dict[str, Any] = {
        "extra_faults": model,
        "auth": "none",
        "large_invite": False,
        "media": MediaSpec(),
    }
    if kind == 0:
        start = round(rng.uniform(1.0, 4.5) * _HOUR, 3)
        return (
            start,
            "night marathon on G.722",
            {
                **base,
                "codec": "G722",
                "talk_s": round(rng.uniform(150.0, 240.0), 3),
            },
        )
    if kind == 1:
        return (
            _business_hours(rng),
            "slow setup, long ringing, 2-3 s GSM call",
            {
                **base,
                "codec": "GSM",
                "pdd_s": round(rng.uniform(4.0, 4.8), 3),
                "ring_s": round(rng.uniform(20.0, 28.0), 3),
                "talk_s": round(rng.uniform(2.2, 3.0), 3),
            },
        )
    start = round(rng.uniform(21.5, 23.5) * _HOUR, 3)
    return (
        start,
        "late-evening iLBC call with slow setup",
        {
            **base,
            "codec": "iLBC",
            "pdd_s": round(rng.uniform(3.0, 4.5), 3),
            "talk_s": round(rng.uniform(100.0, 150.0), 3),
        },
    )


#: (negotiated, actually sent) codec of the codec-mismatch calls: static payload types only, as the
#: gateways that ignore an answer are the old G.711/G.729 ones.
_MISMATCHES = (("PCMU", "G729"), ("PCMA", "PCMU"), ("G729", "PCMU"), ("PCMU", "PCMA"))
#: Public signalling sources of NATted parties: remote workers' home routers and a carrier trunk's SBC.
_NAT_PUBLIC = ("203.0.113.{}", "198.51.100.{}")


def _lan_address(rng: random.Random) -> str:
    """A private address as NATted phones advertise it: home LAN, office RFC 1918 or carrier-grade NAT."""
    kind = rng.randrange(3)
    if kind == 0:
        return f"192.168.{rng.choice((0, 1, 1, 2, 178))}.{rng.randrange(2, 250)}"
    if kind == 1:
        return f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(2, 250)}"
    return f"100.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(2, 250)}"


def _network_faults(out: ScenarioCalls, rng: random.Random, n: int, per_fault: int) -> int:
    """Calls for codec_mismatch and sdp_private_address; returns the next call number.

    A mismatched gateway offers (or not) the codec it then sends though the
    answer picked another one; the callee keeps to the answer. A NATted
    caller signals from a public address (a documentation range standing in
    for the Internet) but puts its LAN address in SDP; its RTP still flows
    because the far end does symmetric RTP, so only the SDP gives it away.
    """
    for i in range(per_fault):
        negotiated, sent = _MISMATCHES[i % len(_MISMATCHES)]
        offer = (negotiated, sent) if i % 2 == 0 else (negotiated,)
        description = f"gateway sends {sent} though the SDP answer chose {negotiated}"
        out.calls.append(
            _day_call(
                n,
                _business_hours(rng),
                rng,
                description,
                codec=negotiated,
                offer=offer,
                rtp_codec=sent,
                talk_s=round(rng.uniform(15.0, 40.0), 3),
            )
        )
        n += 1
    for i in range(per_fault):
        call = _day_call(n, _business_hours(rng), rng, "NATted caller advertises its LAN address in SDP")
        public = _NAT_PUBLIC[i % 2].format(120 + i)
        # A home router maps the phone's 5060 to some high port; a trunk SBC keeps 5060.
        port = rng.randrange(20000, 60000) if i % 2 == 0 else call.caller.port
        caller = replace(call.caller, ip=public, port=port, sdp_ip=_lan_address(rng))
        out.calls.append(replace(call, caller=caller))
        n += 1
    return n


def _malformed_incidents(out: ScenarioCalls, rng: random.Random, t0: float) -> None:
    """A fuzzer walking through every kind of broken message, and a stack that clips its datagrams."""
    site = _site()
    kinds = tuple(malformed.KINDS)
    incidents.malformed_burst(out, rng, site=site, start_s=t0, ip="203.0.113.90", messages=42, kinds=kinds)
    incidents.malformed_burst(
        out,
        rng,
        site=site,
        start_s=t0 - 9.0 * _HOUR,
        ip="198.51.100.140",
        messages=16,
        kinds=("truncated", "truncated", "non_utf8_header"),
        rate_per_s=0.5,
        user_agent="Generic SIP Stack 0.9",
        description="broken SIP stack",
    )


def build_day(rng: random.Random, options: Options) -> ScenarioCalls:
    """A labelled day: normal office traffic, every quality and failure fault, attacks and anomalies.

    Normal calls fall in business hours; each fault kind gets ``calls // 40``
    calls (at least 2), codec mismatch and NATted SDP as many, the
    'model_anomaly' kinds ``calls // 30`` (at least 3) and each security
    incident happens once, in the evening; a SIP fuzzer comes at night and a
    broken SIP stack clips its messages at lunchtime. Last, ``calls // 60``
    (at least 3) calls of each ``anomalies.ANOMALY_KINDS`` kind; with
    ``held_out`` false the held-out kinds are left out (a training day that
    never shows them), every other call staying the same.
    """
    n_normal = int(options["calls"])
    out = ScenarioCalls()
    n = 0
    for _ in range(n_normal):
        kwargs: dict[str, Any] = {}
        if rng.random() < 0.08:
            kwargs["final_status"] = rng.choice(_USER_OUTCOMES)
        out.calls.append(_day_call(n, _business_hours(rng), rng, "normal call", **kwargs))
        n += 1
    per_fault = max(2, n_normal // 40)
    for kind in _FAULT_KINDS:
        for _ in range(per_fault):
            description, kwargs = _faulty(kind, rng)
            out.calls.append(_day_call(n, _business_hours(rng), rng, description, **kwargs))
            n += 1
    for i in range(max(3, n_normal // 30)):
        start, description, kwargs = _anomaly(i % 3, rng)
        kind = anomalies.LEGACY_KINDS[i % 3]
        out.calls.append(_day_call(n, start, rng, description, anomaly_kind=kind, **kwargs))
        n += 1
    site = _site()
    for i in range(max(4, n_normal // 10)):
        phone = _phone(f"{1000 + i}", f"User {1000 + i}", f"10.1.{i // 200}.{10 + i % 200}", rng)
        out.transactions.append(
            TransactionSpec(_business_hours(rng), "REGISTER", phone, site.pbx, challenge=True)
        )
    for h in range(24):
        out.transactions.append(
            TransactionSpec(h * _HOUR + 5.0, "OPTIONS", site.pbx, site.trunk, description="trunk keepalive")
        )
    _security_incidents(out, rng, t0=19.5 * _HOUR, gap_s=900.0)
    # Drawn last, so that adding them left every earlier call of a seed as it was.
    n = _network_faults(out, rng, n, per_fault)
    _malformed_incidents(out, rng, t0=21.75 * _HOUR)
    _anomaly_kinds(out, rng, n, max(3, n_normal // 60), held_out=bool(options["held_out"]))
    return out


def _anomaly_kinds(out: ScenarioCalls, rng: random.Random, n: int, per_kind: int, *, held_out: bool) -> None:
    """``per_kind`` calls of every ``anomalies.ANOMALY_KINDS`` kind (held-out ones only when ``held_out``).

    The calls are normal calls of the day with media left clean, so that
    only the kind's own oddity sets them apart and no rule fires.
    """
    base: dict[str, Any] = {
        "extra_faults": ("model_anomaly",),
        "auth": "none",
        "large_invite": False,
        "media": MediaSpec(),
    }
    for kind in anomalies.ANOMALY_KINDS.values():
        for _ in range(per_kind):
            call = _day_call(n, _business_hours(rng), rng, kind.description, anomaly_kind=kind.name, **base)
            n += 1
            # Applied either way, so leaving the held-out kinds out changes no other call's draws.
            call = kind.apply(call, rng)
            if held_out or not kind.held_out:
                out.calls.append(call)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "demo", "about a minute of mixed normal, impaired and failed calls, plus a scan", build_demo
        ),
        Scenario("clean", "normal calls only", build_clean, {"calls": 8, "duration": 15.0}),
        Scenario(
            "impaired", "one impairment per call, swept over its range", build_impaired, {"duration": 20.0}
        ),
        Scenario(
            "load",
            "N concurrent G.711 calls for benchmarks",
            build_load,
            {"calls": 200, "duration": 60.0, "codec": "PCMU", "rtcp": True},
        ),
        Scenario(
            "security",
            "a few normal calls, then scanner sweeps, a REGISTER brute force, an INVITE flood, toll fraud",
            build_security,
            {"calls": 4, "gap": 400.0},
        ),
        Scenario(
            "day",
            "a labelled day: normal traffic, every fault, security incidents, model anomalies",
            build_day,
            {"calls": 300, "held_out": True},
            epoch=DAY_EPOCH,
        ),
    )
}
