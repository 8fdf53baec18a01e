"""The UI's one door into the call store: a connection per request, the store's queries.

Only this module imports ``callqual.store`` (engine and queries, per the store contract), so
the routes read as "ask the store, render" and a change on the store's side is mended here.
"""

from collections.abc import Iterator
from datetime import datetime

from fastapi import Request
from sqlalchemy import Connection, Engine

from callqual.store import queries
from callqual.store.engine import open_store
from callqual.store.queries import AlertFilter, CallFilter
from callqual.store.views import (
    AlertDetail,
    AlertPage,
    AlertRow,
    CallDetail,
    CallPage,
    CallRow,
    IntervalRow,
    MessageRow,
    Overview,
    StreamRow,
)

__all__ = [
    "AlertDetail",
    "AlertFilter",
    "AlertPage",
    "AlertRow",
    "CallDetail",
    "CallFilter",
    "CallPage",
    "CallRow",
    "IntervalRow",
    "MessageRow",
    "Overview",
    "StreamRow",
    "alert_detail",
    "alerts_after",
    "call_detail",
    "connection",
    "latest_alert_cursor",
    "open_store",
    "overview",
    "search_alerts",
    "search_calls",
]

search_calls = queries.search_calls
call_detail = queries.call_detail
search_alerts = queries.search_alerts
alert_detail = queries.alert_detail


def overview(conn: Connection, since: datetime, until: datetime) -> Overview:
    return queries.overview(conn, since, until)


def alerts_after(conn: Connection, cursor: int, limit: int) -> tuple[list[AlertRow], int]:
    """At most ``limit`` alerts committed after ``cursor`` (insertion order), and the next cursor."""
    return queries.alerts_after(conn, cursor, limit)


latest_alert_cursor = queries.latest_alert_cursor


def connection(request: Request) -> Iterator[Connection]:
    """FastAPI dependency: one read connection for the request, closed after it."""
    engine: Engine = request.app.state.engine
    with engine.connect() as conn:
        yield conn
