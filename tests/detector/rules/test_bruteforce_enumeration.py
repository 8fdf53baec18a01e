"""register_bruteforce tells password guessing from an extension enumeration."""

from callqual.detector.rules import RuleSettings
from callqual.detector.rules.register_bruteforce import RegisterBruteforce
from callqual.schemas import Alert, SipMessageEvent
from tests.detector.rules.factories import response

PBX = ("10.0.0.5", 5060)
ATTACKER = ("203.0.113.9", 5070)


def _failures(n: int, users: int) -> list[SipMessageEvent]:
    return [
        response(
            401,
            method="REGISTER",
            frame=i,
            ts=i * 0.5,
            src=PBX,
            dst=ATTACKER,
            call_id=f"r{i}",
            to_uri=f"sip:{100 + i % users}@pbx",
        )
        for i in range(n)
    ]


def _run(events: list[SipMessageEvent]) -> list[Alert]:
    rule = RegisterBruteforce(RuleSettings())
    return [a for e in events for a in rule.observe(e)]


def test_one_failure_per_username_is_an_enumeration_not_a_brute_force() -> None:
    assert _run(_failures(60, users=60)) == []


def test_repeated_failures_on_few_usernames_alert() -> None:
    (alert,) = _run(_failures(60, users=3))
    assert alert.details["distinct_users"] == 3
