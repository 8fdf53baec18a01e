"""What the alerter sends: notifications, their payloads, and the webhook signature.

Pure: no I/O, no clock. A :class:`Notification` is one message to a human or
a system; it summarises one alert or a group of alerts of one rule (see
:mod:`callqual.alerter.grouping`). Each receiver kind renders it differently:

- generic webhook: a documented, versioned JSON document (``PAYLOAD_VERSION``)
  carrying the alerts, their evidence and the call context, signed with
  HMAC-SHA256 over ``timestamp + "." + body`` so a receiver can check origin
  and freshness;
- Slack incoming webhook: Block Kit blocks (who, when, rule, key numbers) and
  a plain ``text`` fallback for notifications and old clients;
- Alertmanager: the ``/api/v2/alerts`` list, one entry per group, with
  low-cardinality labels so Alertmanager's own grouping and silences work.

The ``notification_id`` is computed from the group and the alert ids, never
from time or attempt number, so every retry of one notification carries the
same idempotency id and a receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callqual.schemas import Alert, CallRecord

#: Version of the generic webhook payload; bumped on any change a receiver could misread.
PAYLOAD_VERSION = "callqual.notification.v1"
SIGNATURE_HEADER = "X-Callqual-Signature"
TIMESTAMP_HEADER = "X-Callqual-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Alerts rendered in full in one notification; the rest are counted, not listed
DEFAULT_SAMPLE_SIZE = 10


@dataclass(frozen=True, slots=True)
class Notification:
    """One outgoing message: ``count`` alerts of one group, the first few in full."""

    notification_id: str
    group_key: str
    rule: str
    severity: str
    #: All alerts folded into this notification (``len(alerts) <= count``: only a sample is kept)
    count: int
    alerts: tuple[Alert, ...]
    first_ts: float
    last_ts: float
    #: Distinct sources and calls among all ``count`` alerts (bounded counts, not lists)
    distinct_sources: int = 0
    distinct_calls: int = 0
    #: Call records known for the sampled alerts, by Call-ID
    calls: Mapping[str, CallRecord] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if self.count == 1:
            return self.alerts[0].summary
        return (
            f"{self.count} {self.rule} alerts ({self.severity}) from {self.distinct_sources} source(s), "
            f"{self.distinct_calls} call(s) between {_iso(self.first_ts)} and {_iso(self.last_ts)}"
        )


def notification_id(group_key: str, alert_ids: Sequence[str]) -> str:
    """Stable id of a notification: the same group and alerts give the same id, retry after retry."""
    digest = hashlib.sha256(group_key.encode())
    for alert_id in sorted(alert_ids):
        digest.update(b"\0" + alert_id.encode())
    return digest.hexdigest()[:32]


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # past year 9999: a pcapng clock can say so
        return f"{ts:.6g} s since 1970"


def call_page_url(ui_base_url: str | None, call_id: str | None) -> str | None:
    """The web UI's page of a call (``CALLQUAL_UI_BASE_URL`` + ``/calls/<id>``), the Call-ID escaped."""
    if not ui_base_url or not call_id:
        return None
    return f"{ui_base_url.rstrip('/')}/calls/{urllib.parse.quote(call_id, safe='')}"


def _call_context(call: CallRecord) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "from_uri": call.from_uri,
        "to_uri": call.to_uri,
        "caller_ip": call.caller_ip,
        "callee_ip": call.callee_ip,
        "user_agent": call.user_agent,
        "state": call.state,
        "final_status": call.final_status,
        "final_reason": call.final_reason,
        "category": call.category,
        "problems": list(call.problems),
        "start_ts": call.start_ts,
        "duration_s": call.duration_s,
        "post_dial_delay_ms": call.post_dial_delay_ms,
        "setup_time_ms": call.setup_time_ms,
        "mos": call.mos,
        "codecs": list(call.codecs),
    }


def webhook_payload(n: Notification, *, ui_base_url: str | None = None) -> dict[str, Any]:
    """The generic webhook document (``PAYLOAD_VERSION``); see the README for the field list.

    With ``ui_base_url`` each alert carries ``call_url``, its call's page in the web UI.
    """
    alerts = []
    for alert in n.alerts:
        doc = alert.model_dump(mode="json")
        call = n.calls.get(alert.call_id) if alert.call_id else None
        doc["call"] = _call_context(call) if call is not None else None
        url = call_page_url(ui_base_url, alert.call_id)
        if url is not None:
            doc["call_url"] = url
        alerts.append(doc)
    return {
        "version": PAYLOAD_VERSION,
        "notification_id": n.notification_id,
        "group_key": n.group_key,
        "rule": n.rule,
        "severity": n.severity,
        "summary": n.summary,
        "count": n.count,
        "truncated": n.count > len(n.alerts),
        "distinct_sources": n.distinct_sources,
        "distinct_calls": n.distinct_calls,
        "first_ts": n.first_ts,
        "last_ts": n.last_ts,
        "first_time": _iso(n.first_ts),
        "last_time": _iso(n.last_ts),
        "alerts": alerts,
    }


def encode(doc: Mapping[str, Any] | Sequence[Any]) -> bytes:
    """Canonical JSON bytes: the exact bytes signed are the bytes sent."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``.

    The timestamp is inside the MAC so a captured request cannot be replayed
    later with a fresh timestamp header; receivers should also reject old ones.
    """
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Receiver side of :func:`sign`, in constant time (for tests and as reference code)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


# -- Slack -------------------------------------------------------------------

_SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":information_source:",
}
#: Slack rejects section texts over 3000 characters
_SLACK_TEXT_LIMIT = 2900


def _clip(text: str, limit: int = _SLACK_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn control characters; URIs like <sip:...> would otherwise become links.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _key_numbers(alert: Alert) -> str:
    parts = [f"{k}={v}" for k, v in alert.details.items() if isinstance(v, int | float) and v is not None]
    return ", ".join(parts[:6])


def slack_payload(n: Notification, *, ui_base_url: str | None = None) -> dict[str, Any]:
    emoji = _SEVERITY_EMOJI.get(n.severity, "")
    head = f"{emoji} [{n.severity.upper()}] {n.rule}: {n.summary}"
    fields: list[dict[str, str]] = [
        {"type": "mrkdwn", "text": f"*Rule*\n{_slack_escape(n.rule)}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{n.severity}"},
        {"type": "mrkdwn", "text": f"*When*\n{_iso(n.first_ts)}"},
        {"type": "mrkdwn", "text": f"*Alerts*\n{n.count}"},
    ]
    lines = []
    for alert in n.alerts:
        who = alert.source_ip or "?"
        call = n.calls.get(alert.call_id) if alert.call_id else None
        if call is not None:
            who = f"{call.from_uri or '?'} → {call.to_uri or '?'} ({who})"
        elif alert.call_id:
            who = f"{who}, call {alert.call_id}"
        numbers = _key_numbers(alert)
        url = call_page_url(ui_base_url, alert.call_id)
        lines.append(
            f"• {_iso(alert.first_ts)} {_slack_escape(who)}: {_slack_escape(alert.summary)}"
            + (f" _({_slack_escape(numbers)})_" if numbers else "")
            + (f" <{url}|call page>" if url else "")
        )
    if n.count > len(n.alerts):
        lines.append(f"… and {n.count - len(n.alerts)} more")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{n.rule} ({n.severity})", 150)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(_slack_escape(n.summary))},
            "fields": fields,
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines))}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"notification {n.notification_id}"}]},
    ]
    return {"text": _clip(head), "blocks": blocks}


# -- Alertmanager --------------------------------------------------------------


def alertmanager_payload(n: Notification, *, generator_url: str | None = None) -> list[dict[str, Any]]:
    """One Alertmanager alert per notification, for ``POST /api/v2/alerts``.

    Labels stay low-cardinality (rule, severity, and the source only when the
    whole group came from one); the per-call detail goes into annotations,
    which Alertmanager does not index.
    """
    labels = {"alertname": n.rule, "severity": n.severity, "service": "callqual"}
    sources = {a.source_ip for a in n.alerts if a.source_ip}
    if n.distinct_sources == 1 and len(sources) == 1:
        labels["source_ip"] = next(iter(sources))
    annotations = {
        "summary": n.summary,
        "description": "\n".join(a.summary for a in n.alerts),
        "count": str(n.count),
        "notification_id": n.notification_id,
    }
    call_ids = [a.call_id for a in n.alerts if a.call_id]
    if call_ids:
        annotations["call_ids"] = ", ".join(call_ids)
    doc: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(n.first_ts),
    }
    if generator_url:
        doc["generatorURL"] = generator_url
    return [doc]
