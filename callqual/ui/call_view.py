"""What the call page shows, assembled from the store's CallDetail (pure).

The ladder, the quality charts, and the links that make an alert's evidence point at the
ladder's arrows (by frame number, which the evidence and the stored messages share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from callqual.ui.charts import quality_charts
from callqual.ui.ladder import endpoint, render_ladder
from callqual.ui.sip_text import TextLine, highlighted_lines
from callqual.ui.urls import call_url

if TYPE_CHECKING:  # the store's views import sqlalchemy; this module only reads their fields
    from callqual.store.views import AlertRow, CallDetail, MessageRow

MODEL_RULE = "anomalous_call"


@dataclass(frozen=True, slots=True)
class EvidenceLink:
    frame: int
    first_line: str
    message_id: int | None


@dataclass(frozen=True, slots=True)
class AlertView:
    alert: AlertRow
    evidence: Sequence[EvidenceLink]


@dataclass(frozen=True, slots=True)
class CallView:
    detail: CallDetail
    ladder: Markup
    charts: dict[str, Markup]
    alerts: Sequence[AlertView]
    #: The learned model's alert (its details are the explanation), when it flagged the call
    model_alert: AlertRow | None


def message_url(call_id: str, message_id: int) -> str:
    return call_url(call_id, f"/messages/{message_id}")


def evidence_links(alert: AlertRow, messages: Sequence[MessageRow]) -> list[EvidenceLink]:
    by_frame = {m.frame: m.id for m in messages}
    out = []
    for item in alert.evidence:
        frame = int(item.get("frame", -1))
        out.append(EvidenceLink(frame, str(item.get("first_line", "")), by_frame.get(frame)))
    return out


def evidence_needles(evidence: Sequence[dict[str, Any]], frame: int) -> list[str]:
    """The strings to highlight in the message of ``frame``: its evidence first line and header values."""
    needles: list[str] = []
    for item in evidence:
        if int(item.get("frame", -1)) == frame:
            needles.append(str(item.get("first_line", "")))
            needles += [f"{k}: {v}" for k, v in dict(item.get("headers") or {}).items()]
            needles += [str(v) for v in dict(item.get("headers") or {}).values() if len(str(v)) > 3]
    return needles


def evidence_lines(evidence: Sequence[dict[str, Any]], message: MessageRow) -> Sequence[TextLine]:
    return highlighted_lines(message.raw, evidence_needles(evidence, message.frame))


def build_call_view(detail: CallDetail) -> CallView:
    call_id = detail.call.call_id
    ladder = render_ladder(
        detail.messages,
        detail.streams,
        message_url=lambda m: message_url(call_id, m.id),
        title=f"SIP ladder of {call_id}",
    )
    names = {
        s.stream_id: f"{s.codec or '?'} {endpoint(s.src_ip, s.src_port)}→{endpoint(s.dst_ip, s.dst_port)}"
        for s in detail.streams
    }
    # Markup: render_ladder and the chart writers escape every piece of text they place.
    charts = {k: Markup(v) for k, v in quality_charts(detail.intervals, names).items()}
    alerts = [AlertView(a, evidence_links(a, detail.messages)) for a in detail.alerts]
    model = next((a for a in detail.alerts if a.rule == MODEL_RULE), None)
    return CallView(detail, Markup(ladder), charts, alerts, model)
