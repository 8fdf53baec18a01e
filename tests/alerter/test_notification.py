"""Payloads: the versioned webhook document, Slack blocks, Alertmanager alerts, signatures."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from callqual.alerter.grouping import Grouper, GroupingPolicy
from callqual.alerter.notification import (
    PAYLOAD_VERSION,
    Notification,
    alertmanager_payload,
    encode,
    notification_id,
    sign,
    slack_payload,
    verify,
    webhook_payload,
)
from callqual.alerter.service import build_receivers
from callqual.alerter.settings import AlerterSettings
from callqual.schemas import AnalysisReport
from tests.alerter.conftest import make_alert


def single(report: AnalysisReport) -> Notification:
    g = Grouper(GroupingPolicy(group_wait_s=0))
    alert = next(a for a in report.alerts if a.rule == "packet_loss")
    g.add(alert, 0.0)
    (n,) = g.due(0.0)
    calls = {c.call_id: c for c in report.calls if c.call_id == alert.call_id}
    return replace(n, calls=calls)


def test_webhook_payload_has_version_context_and_evidence(demo_report: AnalysisReport) -> None:
    n = single(demo_report)
    doc = webhook_payload(n)
    assert doc["version"] == PAYLOAD_VERSION
    assert doc["notification_id"] == n.notification_id
    assert doc["count"] == 1 and not doc["truncated"]
    (alert,) = doc["alerts"]
    assert alert["rule"] == "packet_loss"
    assert alert["evidence"] and alert["evidence"][0]["first_line"]
    assert alert["call"]["call_id"] == alert["call_id"]
    assert alert["call"]["from_uri"].startswith("sip:")
    json.loads(encode(doc))  # plain JSON


def test_notification_id_is_order_independent_and_stable() -> None:
    assert notification_id("k", ["a", "b"]) == notification_id("k", ["b", "a"])
    assert notification_id("k", ["a"]) != notification_id("k2", ["a"])


def test_signature_round_trip() -> None:
    body = b'{"x":1}'
    sig = sign(b"key", 1_700_000_000, body)
    assert sig.startswith("v1=")
    assert verify(b"key", "1700000000", body, sig)
    assert not verify(b"key", "1700000001", body, sig)
    assert not verify(b"other", "1700000000", body, sig)
    assert not verify(b"key", "1700000000", body + b" ", sig)
    assert not verify(b"key", "nope", body, sig)


def test_slack_blocks_and_fallback(demo_report: AnalysisReport) -> None:
    n = single(demo_report)
    doc = slack_payload(n)
    assert "packet_loss" in doc["text"] and "CRITICAL" in doc["text"]
    kinds = [b["type"] for b in doc["blocks"]]
    assert kinds[0] == "header" and "section" in kinds
    text = json.dumps(doc["blocks"])
    assert "sip:" in text  # who
    assert "loss_ratio=" in text  # key numbers
    assert "2024-03-04T" in text  # when (the demo's capture date)


def test_slack_group_mentions_the_rest() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=0, sample_size=3))
    for i in range(50):
        g.add(make_alert(f"a{i}"), 0.0)
    (n,) = g.due(0.0)
    doc = slack_payload(n)
    assert "and 47 more" in json.dumps(doc)
    assert doc["text"].count("50 call_failed alerts") == 1


def test_alertmanager_payload_labels_are_low_cardinality() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=0))
    for i in range(3):
        g.add(make_alert(f"a{i}", call_id=f"c{i}", source_ip=f"10.0.0.{i}"), 0.0)
    (n,) = g.due(0.0)
    (doc,) = alertmanager_payload(n)
    assert doc["labels"] == {"alertname": "call_failed", "severity": "warning", "service": "callqual"}
    assert doc["annotations"]["count"] == "3"
    assert doc["startsAt"].endswith("Z")


def test_payloads_link_each_alert_to_its_call_page(demo_report: AnalysisReport) -> None:
    n = single(demo_report)
    (alert,) = n.alerts
    assert alert.call_id
    base = "https://ui.example.net:8080/"
    expected = "https://ui.example.net:8080/calls/" + alert.call_id.replace("@", "%40")
    (doc,) = webhook_payload(n, ui_base_url=base)["alerts"]
    assert doc["call_url"] == expected
    assert "call_url" not in webhook_payload(n)["alerts"][0]
    slack = json.dumps(slack_payload(n, ui_base_url=base))
    assert f"<{expected}|call page>" in slack
    assert "call page" not in json.dumps(slack_payload(n))


def test_ui_base_url_comes_from_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLQUAL_UI_BASE_URL", "http://10.0.0.5:8080")
    monkeypatch.setenv("CALLQUAL_ALERTER_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    settings = AlerterSettings()
    assert settings.ui_base_url == "http://10.0.0.5:8080"
    (webhook,) = build_receivers(settings)
    assert webhook.ui_base_url == "http://10.0.0.5:8080"
