"""call_failed, the shared status table, and the categories built on it."""

import pytest

from callqual.detector.call_context import CallContext
from callqual.detector.categories import PRECEDENCE, categorize
from callqual.detector.rules import RuleSettings
from callqual.detector.rules.call_failed import CallFailed
from callqual.detector.rules.failure_classes import (
    CATEGORY_BY_CLASS,
    FAILURE_CLASS_BY_STATUS,
    SEVERITY_BY_CLASS,
    failure_class,
)
from callqual.schemas import Alert
from tests.detector.rules.factories import ctx, record, request, response

S = RuleSettings()

EXPECTED_CLASSES = {
    401: "auth",
    407: "auth",
    403: "forbidden",
    404: "not_found",
    484: "not_found",
    604: "not_found",
    408: "unreachable",
    480: "unreachable",
    410: "unreachable",
    488: "codec",
    606: "codec",
    415: "codec",
    500: "server",
    502: "server",
    503: "server",
    504: "server",
    599: "server",
    486: "busy",
    600: "busy",
    487: "cancelled",
    603: "declined",
    400: "other",
    420: "other",
    491: "other",
    699: "other",
    302: "redirect",
}


@pytest.mark.parametrize(("status", "cls"), sorted(EXPECTED_CLASSES.items()))
def test_status_table(status: int, cls: str) -> None:
    assert failure_class(status) == cls


@pytest.mark.parametrize("status", [None, 100, 180, 200, 299, 700])
def test_not_a_failure(status: int | None) -> None:
    assert failure_class(status) is None


def test_every_class_has_a_severity_and_a_category() -> None:
    classes = set(FAILURE_CLASS_BY_STATUS.values()) | {"server", "other", "redirect"}
    assert classes <= set(SEVERITY_BY_CLASS) and classes <= set(CATEGORY_BY_CLASS)


def failed(status: int, **kw: object) -> CallContext:
    rec = record(
        state="cancelled" if status == 487 else "failed",
        final_status=status,
        final_reason="Reason",
        answer_ts=None,
        end_ts=1003.0,
        duration_s=None,
        **kw,
    )
    msgs = [request("INVITE", frame=1), response(100, frame=2), response(status, frame=3, ts=1003.0)]
    return ctx(rec=rec, streams=[], messages=msgs)


@pytest.mark.parametrize(
    ("status", "cls", "severity"),
    [
        (401, "auth", "warning"),
        (407, "auth", "warning"),
        (403, "forbidden", "warning"),
        (404, "not_found", "info"),
        (408, "unreachable", "warning"),
        (488, "codec", "warning"),
        (503, "server", "critical"),
        (499, "other", "warning"),
    ],
)
def test_call_failed_fires_with_class(status: int, cls: str, severity: str) -> None:
    (a,) = CallFailed(S).evaluate(failed(status))
    assert a.details["failure_class"] == cls and a.severity == severity
    assert [e.frame for e in a.evidence] == [1, 3]  # the INVITE and the final response


@pytest.mark.parametrize("status", [486, 487, 600, 603, 302])
def test_user_outcomes_do_not_alert_by_default(status: int) -> None:
    assert CallFailed(S).evaluate(failed(status)) == []


@pytest.mark.parametrize("status", [486, 487, 600, 603])
def test_user_outcomes_alert_when_configured(status: int) -> None:
    rule = CallFailed(RuleSettings(call_failed_alert_user_outcomes=True))
    (a,) = rule.evaluate(failed(status))
    assert a.severity == "info"


def test_answered_call_is_not_failed() -> None:
    assert CallFailed(S).evaluate(ctx()) == []


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, "failed_auth"),
        (403, "failed_auth"),
        (503, "failed_network"),
        (408, "failed_network"),
        (488, "failed_network"),
        (486, "failed_user"),
        (487, "failed_user"),
        (603, "failed_user"),
        (404, "failed_network"),
        (302, "ok"),
    ],
)
def test_failure_categories(status: int, category: str) -> None:
    assert categorize(failed(status), []) == category


def _alert(rule: str, call_id: str | None = "call-1", source_ip: str | None = None, **details: str) -> Alert:
    return Alert(
        alert_id="x",
        rule=rule,
        severity="warning",
        call_id=call_id,
        source_ip=source_ip,
        first_ts=1000.0,
        last_ts=1001.0,
        summary="",
        details=dict(details),
    )


def test_category_precedence() -> None:
    c = ctx()
    assert categorize(c, []) == "ok"
    assert categorize(c, [_alert("high_jitter")]) == "poor_quality"
    assert categorize(c, [_alert("high_jitter"), _alert("one_way_audio")]) == "one_way"
    assert categorize(c, [_alert("one_way_audio"), _alert("no_media")]) == "no_media"
    assert (
        categorize(c, [_alert("no_media"), _alert("dropped_call", reason="abnormal_cause")])
        == "failed_network"
    )
    # A call that just lost its BYE is not a failure.
    assert categorize(c, [_alert("dropped_call", reason="no_bye")]) == "ok"
    # Alerts about other calls do not count.
    assert categorize(c, [_alert("no_media", call_id="other")]) == "ok"
    assert categorize(failed(401), [_alert("no_media")]) == "failed_auth"
    scanner = _alert("sip_scanner", call_id=None, source_ip=c.record.caller_ip)
    assert categorize(failed(401), [scanner]) == "suspicious"
    assert categorize(c, [_alert("sip_scanner", call_id=None, source_ip="192.0.2.77")]) == "ok"
    assert categorize(c, [_alert("toll_fraud", call_id=None, source_ip="192.0.2.77", account="alice")]) == (
        "suspicious"
    )
    assert PRECEDENCE[0] == "suspicious" and PRECEDENCE[-1] == "ok"
