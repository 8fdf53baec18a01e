"""Server-sent events: alerts as the store commits them, rendered as rows for htmx to insert.

The page hands over the cursor it was rendered at (the store's insertion sequence, not
capture time), so nothing committed between the page and the stream is missed or shown
twice; each event's ``id`` is its cursor, so a browser that reconnects by itself sends it
back (``Last-Event-ID``) and resumes where it was. Each poll reads at most ``MAX_PER_POLL``
alerts; a burst drains over several polls. Streams end when the server stops.
"""

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from callqual.ui.filters import AlertQuery
from callqual.ui.settings import UiSettings
from callqual.ui.store_access import AlertRow, alerts_after

router = APIRouter(include_in_schema=False)

MAX_PER_POLL = 200
KEEPALIVE_S = 15.0
_ROW_TEMPLATES = {"alerts": "alert_row.html", "overview": "overview_alert.html"}


def _matches(alert: AlertRow, q: AlertQuery) -> bool:
    wanted = {"severity": q.severity, "rule": q.rule, "category": q.category, "source_ip": q.source}
    return all(value is None or getattr(alert, field) == value for field, value in wanted.items()) and (
        (q.start is None or alert.first_ts >= q.start) and (q.end is None or alert.first_ts < q.end)
    )


def sse_event(name: str, data: str, event_id: int | None = None) -> str:
    """One event; every line of ``data`` gets its own ``data:`` field, as the format requires."""
    head = f"event: {name}\n" + ("" if event_id is None else f"id: {event_id}\n")
    return head + "".join(f"data: {line}\n" for line in data.splitlines() or [""]) + "\n"


def resume_cursor(after: int, last_event_id: str | None) -> int:
    """Where a stream starts: the page's cursor, or later if the browser says it got further."""
    if last_event_id and last_event_id.isdigit():
        return max(after, int(last_event_id))
    return after


def _poll(engine: Engine, cursor: int) -> tuple[list[AlertRow], int]:
    with engine.connect() as conn:
        return alerts_after(conn, cursor, MAX_PER_POLL)


@router.get("/events/alerts")
async def alert_events(
    request: Request,
    q: Annotated[AlertQuery, Query()],
    after: int = 0,
    view: Literal["alerts", "overview"] = "alerts",
) -> StreamingResponse:
    settings: UiSettings = request.app.state.settings
    engine: Engine = request.app.state.engine
    template = request.app.state.templates.get_template(_ROW_TEMPLATES[view])
    stopping: threading.Event = request.app.state.stopping

    async def stream() -> AsyncIterator[str]:
        cursor = resume_cursor(after, request.headers.get("last-event-id"))
        idle = 0.0
        yield ": connected\n\n"
        while not stopping.is_set() and not await request.is_disconnected():
            rows, cursor = await run_in_threadpool(_poll, engine, cursor)
            for alert in rows:
                if _matches(alert, q):
                    yield sse_event("alert", template.render(alert=alert, live=True), alert.seq)
                    idle = 0.0
            if idle >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                idle = 0.0
            await asyncio.sleep(settings.live_poll_s)
            idle += settings.live_poll_s

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
