"""One category per call, for dashboards: the single most important thing that happened to it.

Precedence, most important first (the first that applies wins)::

    suspicious      a security alert names this call (its Call-ID, its caller
                    IP while that source was under an incident, or its account
                    for toll fraud): the call may be an attack, whatever else
    failed_auth     final 401/407/403: credentials or ACL rejected
    failed_network  unreachable/server/codec/unknown failure, or a dropped call
                    with an abnormal hang-up cause
    failed_user     busy, declined, cancelled, number not found
    no_media        answered, but no RTP at all
    one_way         answered, RTP in one direction only
    poor_quality    low MOS, packet loss or high jitter
    ok

Failures outrank media problems because a failed call has no media to
judge; suspicion outranks all because an attack's "quality" is not a
service problem. Failure classes come from the same status table as the
``call_failed`` rule, so a call is ``failed_user`` even when user outcomes
raise no alert.
"""

from collections.abc import Mapping
from types import MappingProxyType

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import SECURITY_RULES, uri_user
from callqual.detector.rules.failure_classes import CATEGORY_BY_CLASS, failure_class
from callqual.schemas import Alert, CallCategory

PRECEDENCE: tuple[CallCategory, ...] = (
    "suspicious",
    "failed_auth",
    "failed_network",
    "failed_user",
    "no_media",
    "one_way",
    "poor_quality",
    "ok",
)

#: Category implied by a per-call alert.
CATEGORY_BY_RULE: Mapping[str, CallCategory] = MappingProxyType(
    {
        "no_media": "no_media",
        "one_way_audio": "one_way",
        "low_mos": "poor_quality",
        "packet_loss": "poor_quality",
        "high_jitter": "poor_quality",
    }
)

#: Category implied by (rule, details["reason"]) when the reason matters: a
#: call that merely lost its BYE (capture ended, timeout) is not a failure.
CATEGORY_BY_RULE_REASON: Mapping[tuple[str, str], CallCategory] = MappingProxyType(
    {("dropped_call", "abnormal_cause"): "failed_network"}
)


def names_call(alert: Alert, ctx: CallContext) -> bool:
    """True when a security alert concerns this call."""
    rec = ctx.record
    if alert.call_id == rec.call_id:
        return True
    if any(e.headers.get("call-id") == rec.call_id for e in alert.evidence):
        return True
    if alert.rule == "toll_fraud":
        account = alert.details.get("account")
        return account is not None and account == uri_user(rec.from_uri)
    return alert.source_ip is not None and alert.source_ip == rec.caller_ip


def failure_category(ctx: CallContext) -> CallCategory | None:
    rec = ctx.record
    if rec.answer_ts is not None or rec.state in ("completed", "answered"):
        return None
    cls = failure_class(rec.final_status)
    return CATEGORY_BY_CLASS[cls] if cls is not None else None


def categorize(ctx: CallContext, alerts: list[Alert]) -> CallCategory:
    found: set[CallCategory] = set()
    failed = failure_category(ctx)
    if failed is not None:
        found.add(failed)
    call_id = ctx.record.call_id
    for a in alerts:
        if a.rule in SECURITY_RULES:
            if names_call(a, ctx):
                found.add("suspicious")
            continue
        if a.call_id != call_id:
            continue
        reason = a.details.get("reason")
        cat = CATEGORY_BY_RULE_REASON.get((a.rule, reason)) if isinstance(reason, str) else None
        cat = cat or CATEGORY_BY_RULE.get(a.rule)
        if cat is not None:
            found.add(cat)
    return next((c for c in PRECEDENCE if c in found), "ok")
