"""A call as files: pcap, SVG ladder, text flow; the call search as CSV."""

import csv
import io
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Connection

from callqual.ui import security
from callqual.ui.call_flow_text import render_call_flow
from callqual.ui.filters import CallQuery
from callqual.ui.ladder import render_ladder
from callqual.ui.pcap_export import export_pcap
from callqual.ui.routes.common import Conn, settings_of
from callqual.ui.store_access import CallDetail, CallRow, call_detail, search_calls

router = APIRouter(tags=["exports"])

CSV_COLUMNS = [
    "call_id",
    "start_ts",
    "answer_ts",
    "end_ts",
    "from_uri",
    "to_uri",
    "caller_ip",
    "callee_ip",
    "state",
    "final_status",
    "final_reason",
    "failure_class",
    "category",
    "problems",
    "duration_s",
    "post_dial_delay_ms",
    "setup_time_ms",
    "codec",
    "worst_mos",
    "worst_loss",
    "worst_jitter_ms",
    "model_score",
]


def _detail(conn: Connection, call_id: str) -> CallDetail:
    detail = call_detail(conn, call_id)
    if detail is None:
        raise HTTPException(404, f"no call {call_id}")
    return detail


def _attachment(call_id: str, extension: str) -> dict[str, str]:
    """A download name made of the Call-ID's safe characters (a Call-ID may hold anything)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:80] or "call"
    return {"Content-Disposition": f'attachment; filename="{safe}.{extension}"'}


@router.get("/calls/{call_id:path}.pcap", response_class=Response, summary="The call's SIP messages as pcap")
def call_pcap(conn: Conn, call_id: str) -> Response:
    detail = _detail(conn, call_id)
    return Response(
        export_pcap(detail.messages),
        media_type="application/vnd.tcpdump.pcap",
        headers=_attachment(call_id, "pcap"),
    )


@router.get("/calls/{call_id:path}.txt", response_class=Response, summary="The call flow as text")
def call_text(conn: Conn, call_id: str) -> Response:
    detail = _detail(conn, call_id)
    return Response(
        render_call_flow(call_id, detail.messages, detail.streams), media_type="text/plain; charset=utf-8"
    )


@router.get("/calls/{call_id:path}/ladder.svg", response_class=Response, summary="The SIP ladder as SVG")
def call_ladder(conn: Conn, call_id: str) -> Response:
    detail = _detail(conn, call_id)
    svg = render_ladder(detail.messages, detail.streams, title=f"SIP ladder of {call_id}")
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Content-Security-Policy": security.SVG_CONTENT_SECURITY_POLICY},
    )


def _csv_rows(conn: Connection, q: CallQuery, size: int, limit: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    written = 0
    page = 1
    while written < limit:
        result = search_calls(conn, q.to_filter(size, page=page))
        for row in result.rows[: limit - written]:
            writer.writerow(_csv_values(row))
        written += min(len(result.rows), limit - written)
        yield flush()
        if len(result.rows) < size:
            return
        page += 1
    if result.total > written:
        writer.writerow([f"# cut at {written} of {result.total} calls (csv_max_rows)"])
        yield flush()


def _csv_values(row: CallRow) -> list[object]:
    values: list[object] = []
    for name in CSV_COLUMNS:
        value = getattr(row, name)
        if isinstance(value, list):
            value = " ".join(map(str, value))
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        values.append("" if value is None else value)
    return values


@router.get("/calls.csv", response_class=StreamingResponse, summary="The call search as CSV")
def calls_csv(request: Request, conn: Conn, q: Annotated[CallQuery, Query()]) -> StreamingResponse:
    rows = list(
        _csv_rows(conn, q, 1000, settings_of(request).csv_max_rows)
    )  # read while the connection is open
    return StreamingResponse(
        iter(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )
