"""Kinds of call no rule names but a learned model should flag: the ``model_anomaly`` labels.

Each kind takes a normal call of the day and makes it stand out in a way
a real network shows (a forgotten line left open for an hour, a phone that
only sends during talkspurts, an SBC refreshing the session every few
seconds, a routing loop bloating the INVITE...). A kind is either *tuning*
(the model's settings may be chosen by looking at it) or *held out*: never
used to fit or tune anything, it measures whether the model generalises
to anomalies it was not built for. The three kinds the 'day' scenario
always had (see ``scenarios._anomaly``) are tuning kinds.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from callqual.simulator.spec import CallSpec

#: The longest talk time of a normal call of the 'day' (``scenarios._day_call`` clips at it).
DAY_MAX_TALK_S = 90.0

#: The kinds the 'day' scenario made before these were written (``scenarios._anomaly``, by index).
LEGACY_KINDS: tuple[str, ...] = ("night_marathon_g722", "slow_setup_gsm", "late_ilbc_slow_setup")

_SOFTPHONES = (
    "Zoiper rv2.10.20.3",
    "MicroSIP/3.21.3",
    "Linphone/5.2.0 (belle-sip/5.2.0)",
    "PortSIP VoIP SDK 19.2.1",
)


@dataclass(frozen=True, slots=True)
class AnomalyKind:
    name: str
    #: never fitted or tuned on: the measure of generalisation
    held_out: bool
    description: str
    #: turns a normal call of the day into one of this kind
    apply: Callable[[CallSpec, random.Random], CallSpec]


def _marathon(call: CallSpec, rng: random.Random) -> CallSpec:
    return replace(call, talk_s=round(rng.uniform(8.0, 12.0) * DAY_MAX_TALK_S, 3))


def _one_sided_talkspurts(call: CallSpec, rng: random.Random) -> CallSpec:
    # Above the one_way_audio rule's 5 % floor: both ways carry RTP, one barely.
    share = round(rng.uniform(0.08, 0.2), 3)
    media = replace(call.media, callee_talkspurt_share=share)
    return replace(call, media=media, talk_s=round(rng.uniform(20.0, 60.0), 3))


def _reinvite_churn(call: CallSpec, rng: random.Random) -> CallSpec:
    return replace(call, reinvites=rng.randint(12, 30), talk_s=round(rng.uniform(40.0, 90.0), 3))


def _bloated_invite(call: CallSpec, rng: random.Random) -> CallSpec:
    """A routing loop between proxies: the INVITE carries 60-120 Record-Route entries (5-9 KB)."""
    routes = tuple(
        (
            "Record-Route",
            f"<sip:edge{rng.randrange(1, 40)}.proxy.carrier.example:5060;transport=udp;lr;"
            f"ftag={rng.getrandbits(32):08x}>",
        )
        for _ in range(rng.randint(60, 120))
    )
    return replace(call, invite_headers=routes)


def _long_ringing(call: CallSpec, rng: random.Random) -> CallSpec:
    return replace(call, ring_s=round(rng.uniform(30.0, 55.0), 3))


def _softphone(call: CallSpec, rng: random.Random) -> CallSpec:
    return replace(call, caller=replace(call.caller, user_agent=rng.choice(_SOFTPHONES)))


ANOMALY_KINDS: dict[str, AnomalyKind] = {
    kind.name: kind
    for kind in (
        AnomalyKind("marathon", True, "a call 8-12x longer than any normal call", _marathon),
        AnomalyKind(
            "one_sided_talkspurts",
            True,
            "the callee sends RTP in talkspurts 8-20 % of the time, the caller all along",
            _one_sided_talkspurts,
        ),
        AnomalyKind("reinvite_churn", True, "12-30 session-refresh re-INVITEs in one call", _reinvite_churn),
        AnomalyKind("bloated_invite", True, "an INVITE with 60-120 Record-Route entries", _bloated_invite),
        AnomalyKind("long_ringing", False, "30-55 s of ringing before the answer", _long_ringing),
        AnomalyKind("softphone_user_agent", False, "a softphone in a desk-phone office", _softphone),
    )
}

#: Every kind the labels can name, and whether it is held out.
HELD_OUT: dict[str, bool] = {
    **dict.fromkeys(LEGACY_KINDS, False),
    **{name: kind.held_out for name, kind in ANOMALY_KINDS.items()},
}


def held_out_kinds() -> list[str]:
    return sorted(name for name, held in HELD_OUT.items() if held)
