"""The HTML pages: overview, error log, call search, call page, and their htmx fragments."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from callqual.ui.call_view import build_call_view, evidence_lines
from callqual.ui.charts import bar_chart, minute_label
from callqual.ui.filters import AlertQuery, CallQuery
from callqual.ui.routes.common import Conn, overview_window, render, settings_of
from callqual.ui.store_access import (
    alert_detail,
    call_detail,
    latest_alert_cursor,
    overview,
    search_alerts,
    search_calls,
)

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


@router.get("/")
def overview_page(request: Request, conn: Conn) -> Response:
    since, until = overview_window(request)
    view = overview(conn, since, until)
    days = len({m.minute.date() for m in view.calls_per_minute})
    minutes = [(minute_label(m.minute, days), m.calls) for m in view.calls_per_minute]
    # Markup: the chart writers escape every label themselves.
    per_minute = Markup(bar_chart("Calls per minute", minutes))
    mos = Markup(
        bar_chart("MOS distribution", [(f"{b.low:.1f}-{b.high:.1f}", b.calls) for b in view.mos_histogram])
    )
    cursor = latest_alert_cursor(conn)
    return render(request, "overview.html", view=view, per_minute=per_minute, mos=mos, cursor=cursor)


@router.get("/alerts")
def alerts_page(request: Request, conn: Conn, q: Annotated[AlertQuery, Query()]) -> Response:
    size = settings_of(request).page_size
    page = search_alerts(conn, q.to_filter(size))
    cursor = latest_alert_cursor(conn) if q.page == 1 else None  # later pages do not grow at the top
    pages = max((page.total + size - 1) // size, 1)
    return render(request, "alerts.html", page=page, q=q, params=q.params(), pages=pages, cursor=cursor)


@router.get("/alerts/{alert_id}/evidence")
def alert_evidence(request: Request, conn: Conn, alert_id: str) -> Response:
    detail = alert_detail(conn, alert_id)
    if detail is None:
        raise HTTPException(404, f"no alert {alert_id}")
    evidence = detail.alert.evidence
    messages = [(m, evidence_lines(evidence, m)) for m in detail.messages]
    return render(request, "alert_evidence.html", detail=detail, messages=messages)


@router.get("/calls")
def calls_page(request: Request, conn: Conn, q: Annotated[CallQuery, Query()]) -> Response:
    size = settings_of(request).page_size
    page = search_calls(conn, q.to_filter(size))
    pages = max((page.total + size - 1) // size, 1)
    return render(request, "calls.html", page=page, q=q, params=q.params(), pages=pages)


@router.get("/calls/{call_id:path}/messages/{message_id}")
def message_fragment(request: Request, conn: Conn, call_id: str, message_id: int) -> Response:
    detail = call_detail(conn, call_id)
    message = next((m for m in detail.messages if m.id == message_id), None) if detail else None
    if detail is None or message is None:
        raise HTTPException(404, f"no message {message_id} in call {call_id}")
    lines = evidence_lines([e for a in detail.alerts for e in a.evidence], message)
    return render(request, "message.html", message=message, lines=lines)


@router.get("/calls/{call_id:path}")
def call_page(request: Request, conn: Conn, call_id: str) -> Response:
    for suffix in (".pcap", ".txt", "/ladder.svg"):
        if call_id.endswith(suffix):  # the export routes come first; reaching here means no such call
            raise HTTPException(404, f"no call {call_id[: -len(suffix)]}")
    detail = call_detail(conn, call_id)
    if detail is None:
        raise HTTPException(404, f"no call {call_id}")
    return render(request, "call.html", view=build_call_view(detail), call=detail.call)
