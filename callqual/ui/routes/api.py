"""The same data as JSON under ``/api`` (schema at ``/api/openapi.json``), and ``/healthz``.

Rows are the store's own dataclasses; only messages are re-shaped, their raw bytes given as
text (``\\xNN`` for bytes that are not UTF-8) so the documents stay JSON.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import text

from callqual.ui.filters import AlertQuery, CallQuery
from callqual.ui.routes.common import Conn, overview_window, settings_of
from callqual.ui.sip_text import message_text
from callqual.ui.store_access import (
    AlertPage,
    AlertRow,
    CallPage,
    CallRow,
    IntervalRow,
    MessageRow,
    Overview,
    StreamRow,
    alert_detail,
    call_detail,
    overview,
    search_alerts,
    search_calls,
)
from callqual.ui.urls import call_url

router = APIRouter()


@dataclass(frozen=True, slots=True)
class MessageOut:
    id: int
    ts: datetime
    frame: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    method: str | None
    status_code: int | None
    cseq_num: int | None
    cseq_method: str | None
    retransmission: bool
    first_line: str
    #: The exact message as text; bytes that are not UTF-8 appear as ``\\xNN``
    text: str

    @classmethod
    def of(cls, m: MessageRow) -> "MessageOut":
        return cls(
            m.id, m.ts, m.frame, m.src_ip, m.src_port, m.dst_ip, m.dst_port, m.transport, m.method,
            m.status_code, m.cseq_num, m.cseq_method, m.retransmission, m.first_line, message_text(m.raw),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallDetailOut:
    call: CallRow
    streams: list[StreamRow]
    intervals: list[IntervalRow]
    alerts: list[AlertRow]
    messages: list[MessageOut]
    messages_dropped: int
    links: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertDetailOut:
    alert: AlertRow
    messages: list[MessageOut]
    unresolved: list[dict[str, Any]]


@router.get("/api/calls", response_model=CallPage, tags=["calls"], summary="Search calls")
def api_calls(request: Request, conn: Conn, q: Annotated[CallQuery, Query()]) -> CallPage:
    return search_calls(conn, q.to_filter(settings_of(request).page_size))


@router.get("/api/calls/{call_id:path}", response_model=CallDetailOut, tags=["calls"], summary="One call")
def api_call(conn: Conn, call_id: str) -> CallDetailOut:
    d = call_detail(conn, call_id)
    if d is None:
        raise HTTPException(404, f"no call {call_id}")
    links = {
        "page": call_url(call_id),
        "pcap": call_url(call_id, ".pcap"),
        "ladder": call_url(call_id, "/ladder.svg"),
        "text": call_url(call_id, ".txt"),
    }
    messages = [MessageOut.of(m) for m in d.messages]
    return CallDetailOut(d.call, d.streams, d.intervals, d.alerts, messages, d.messages_dropped, links)


@router.get("/api/alerts", response_model=AlertPage, tags=["alerts"], summary="Search alerts, newest first")
def api_alerts(request: Request, conn: Conn, q: Annotated[AlertQuery, Query()]) -> AlertPage:
    return search_alerts(conn, q.to_filter(settings_of(request).page_size))


@router.get("/api/alerts/{alert_id}", response_model=AlertDetailOut, tags=["alerts"], summary="One alert")
def api_alert(conn: Conn, alert_id: str) -> AlertDetailOut:
    d = alert_detail(conn, alert_id)
    if d is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return AlertDetailOut(d.alert, [MessageOut.of(m) for m in d.messages], list(d.unresolved))


@router.get("/api/overview", response_model=Overview, tags=["overview"], summary="The overview's figures")
def api_overview(request: Request, conn: Conn) -> Overview:
    since, until = overview_window(request)
    return overview(conn, since, until)


@router.get("/healthz", tags=["health"], summary="Liveness and store reachability")
def healthz(request: Request) -> dict[str, Any]:
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "store unreachable"; the reason is reported
        raise HTTPException(503, f"store unreachable: {type(exc).__name__}") from exc
    return {"status": "ok", "errors": dict(request.app.state.errors)}
