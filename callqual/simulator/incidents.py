"""Security incidents as specs: scanner sweeps, REGISTER brute force, INVITE floods, toll fraud, fuzzing.

Each builder appends the specs of one incident to a ``ScenarioCalls`` and
labels every transaction or call with the incident's fault, so an evaluation
can match the detector's per-source alerts to the labels by source IP.
Shapes follow what VoIP honeypots record from the real tools (SIPVicious
svmap/svwar/svcrack, inviteflood, IRSF dialers), with rates chosen to sit
clearly above the rule thresholds, as the real tools do.
"""

import random
from dataclasses import dataclass

from callqual.simulator.labels import Fault
from callqual.simulator.sip_messages import SipParty
from callqual.simulator.spec import CallSpec, MalformedSpec, MediaSpec, ScenarioCalls, TransactionSpec

#: User-Agents of the SIPVicious family and look-alikes, as seen in honeypot logs.
SCANNER_USER_AGENTS = ("friendly-scanner", "sipvicious 0.3.4", "sipcli/v1.8", "friendly-scanner/0.2")
#: What a scanner that hides its tool sends instead: a plausible softphone.
DISGUISED_USER_AGENT = "Zoiper rv2.10.19.2"
#: What a password guesser that spoofs a desk phone sends.
SPOOFED_PHONE_UA = "PolycomVVX-VVX_410-UA/5.9.5.0614"
FLOOD_USER_AGENT = "inviteflood 2.0"
#: What a SIP fuzzer calls itself (PROTOS c07-sip test cases replayed by a generic fuzzer).
FUZZER_USER_AGENT = "PROTOS c07-sip r1"
#: International revenue-share destinations (Iridium/Inmarsat-style satellite and IRSF ranges).
PREMIUM_NUMBERS = ("+88216", "+88213", "+8823", "00882", "+979")


@dataclass(frozen=True, slots=True)
class Site:
    """Where incidents land: the PBX/registrar and the carrier trunk behind it."""

    pbx: SipParty
    trunk: SipParty
    domain: str


def _target(site: Site, ext: str) -> SipParty:
    """The PBX as the addressee of a request to extension ``ext``."""
    pbx = site.pbx
    return SipParty(ext, ext, pbx.ip, site.domain, pbx.user_agent, port=pbx.port)


def scanner_sweep(
    out: ScenarioCalls,
    rng: random.Random,
    *,
    site: Site,
    start_s: float,
    ip: str,
    user_agent: str,
    method: str,
    extensions: int,
    rate_per_s: float = 8.0,
) -> None:
    """An svmap/svwar run: one request per extension, most of them unknown (404) or challenged (401/403).

    INVITE sweeps are real calls to the detector (404 ends each); OPTIONS and
    REGISTER sweeps are dialog-less transactions.
    """
    first = rng.choice((100, 200, 1000, 2000, 5000))
    port = rng.randrange(5061, 5200)
    for n in range(extensions):
        ext = str(first + n)
        t = round(start_s + n / rate_per_s + rng.uniform(0, 0.02), 4)
        party = SipParty(ext, ext, ip, site.domain, user_agent, port=port)
        known = rng.random() < 0.1
        if method == "INVITE":
            out.calls.append(
                CallSpec(
                    t,
                    party,
                    _target(site, ext),
                    "PCMU",
                    pdd_s=round(rng.uniform(0.02, 0.08), 3),
                    final_status=403 if known else 404,
                    extra_faults=("scanner",),
                    category="suspicious",
                    description=f"scanner INVITE sweep ({user_agent})",
                )
            )
        elif method == "REGISTER":
            # svwar only learns that an extension exists from its 401: it never answers the challenge.
            out.transactions.append(
                TransactionSpec(
                    t,
                    "REGISTER",
                    party,
                    site.pbx,
                    final_status=401 if known else 404,
                    suspicious=True,
                    description=f"scanner REGISTER sweep ({user_agent})",
                )
            )
        else:
            out.transactions.append(
                TransactionSpec(
                    t,
                    "OPTIONS",
                    party,
                    _target(site, ext),
                    final_status=200 if known else 404,
                    suspicious=True,
                    description=f"scanner OPTIONS sweep ({user_agent})",
                )
            )


def register_bruteforce(
    out: ScenarioCalls,
    rng: random.Random,
    *,
    site: Site,
    start_s: float,
    ip: str,
    users: list[str],
    attempts: int,
    rate_per_s: float = 4.0,
    user_agent: str = SPOOFED_PHONE_UA,
) -> None:
    """An svcrack run: the same few usernames, one password per attempt, each 401-challenged then 403."""
    port = rng.randrange(5061, 5200)
    for n in range(attempts):
        user = users[n % len(users)]
        out.transactions.append(
            TransactionSpec(
                round(start_s + n / rate_per_s + rng.uniform(0, 0.05), 4),
                "REGISTER",
                SipParty(user, user, ip, site.domain, user_agent, port=port),
                site.pbx,
                challenge=True,
                final_status=403,
                suspicious=True,
                faults=("register_bruteforce", "auth_challenge"),
                description="REGISTER password brute force",
            )
        )


def invite_flood(
    out: ScenarioCalls,
    rng: random.Random,
    *,
    site: Site,
    start_s: float,
    ip: str,
    requests: int,
    rate_per_s: float = 60.0,
) -> None:
    """inviteflood: INVITEs to one extension far faster than the PBX answers them (none is answered).

    Every INVITE carries a fresh random From user, as the tool does, so the
    flood is one source's rate, not an account's concurrency.
    """
    ext = str(rng.randrange(100, 200))
    port = rng.randrange(5061, 5200)
    for n in range(requests):
        user = str(rng.randrange(10**7, 10**8))
        out.transactions.append(
            TransactionSpec(
                round(start_s + n / rate_per_s, 4),
                "INVITE",
                SipParty(user, user, ip, site.domain, FLOOD_USER_AGENT, port=port),
                _target(site, ext),
                final_status=None,
                suspicious=True,
                faults=("sip_flood",),
                description="INVITE flood",
            )
        )


def toll_fraud(
    out: ScenarioCalls,
    rng: random.Random,
    *,
    site: Site,
    start_s: float,
    ip: str,
    account: str,
    calls: int,
    talk_s: tuple[float, float] = (20.0, 40.0),
    spacing_s: float = 2.5,
) -> None:
    """A stolen account dials international premium numbers, many calls at once, all answered."""
    caller = SipParty(account, f"Ext {account}", ip, site.domain, "Asterisk PBX 1.8.32.3")
    trunk = site.trunk
    faults: tuple[Fault, ...] = ("toll_fraud",)
    codec = rng.choice(("PCMA", "PCMU"))  # one dialer, one codec
    for n in range(calls):
        number = rng.choice(PREMIUM_NUMBERS) + str(rng.randrange(10**6, 10**7))
        callee = SipParty(number, number, trunk.ip, trunk.domain, trunk.user_agent)
        out.calls.append(
            CallSpec(
                round(start_s + n * spacing_s + rng.uniform(0, 0.5), 3),
                caller,
                callee,
                codec,
                pdd_s=round(rng.uniform(1.0, 3.0), 3),
                ring_s=round(rng.uniform(0.5, 2.0), 3),
                talk_s=round(rng.uniform(*talk_s), 3),
                media=MediaSpec(rtcp=False),
                extra_faults=faults,
                category="suspicious",
                description=f"toll fraud: account {account} calls premium number {number}",
            )
        )


def malformed_burst(
    out: ScenarioCalls,
    rng: random.Random,
    *,
    site: Site,
    start_s: float,
    ip: str,
    messages: int,
    kinds: tuple[str, ...],
    rate_per_s: float = 2.0,
    user_agent: str = FUZZER_USER_AGENT,
    description: str = "SIP fuzzer",
) -> None:
    """A burst of malformed SIP to the PBX from one source and port, one ``kinds`` entry per datagram in turn.

    Fuzzers walk through their cases in order, each a differently broken
    message; the PBX drops them unanswered. The rate keeps well over the
    rule's 10 errors a minute, as real fuzz runs do.
    """
    port = rng.randrange(5061, 5200)
    client = SipParty("fuzz", "fuzz", ip, site.domain, user_agent, port=port)
    for n in range(messages):
        kind = kinds[n % len(kinds)]
        out.malformed.append(
            MalformedSpec(
                round(start_s + n / rate_per_s + rng.uniform(0, 0.05), 4),
                client,
                site.pbx,
                kind,
                description=f"{description}: {kind.replace('_', ' ')}",
            )
        )
