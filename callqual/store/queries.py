"""Searches over the call store: pure functions of a connection (the web UI and ``callqual calls``).

They return the frozen views of :mod:`callqual.store.views`. Time bounds are half-open,
``[start, end)``, timezone-aware. Nothing here reads the clock: callers pass ``now``.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, Select, and_, case, exists, func, or_, select, tuple_
from sqlalchemy.sql.expression import ColumnElement

from callqual.store.rows import utc
from callqual.store.schema import alerts, calls, sip_message_counts, sip_messages, stream_intervals, streams
from callqual.store.views import (
    AlertDetail,
    AlertPage,
    AlertRow,
    CallDetail,
    CallPage,
    CallRow,
    IntervalRow,
    MessageRow,
    MinuteCount,
    MosBucket,
    Overview,
    StreamRow,
)

#: Most rows one page may ask for.
MAX_LIMIT = 1000
#: MOS histogram edges (half-point buckets over the E-model's 1..4.5 range)
MOS_EDGES = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
#: Per-dialect expression for "the minute a timestamp falls in" (text key, parsed back)
_MINUTE_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True, slots=True)
class CallFilter:
    start: datetime | None = None
    end: datetime | None = None
    #: Caller or callee user part (a number); a trailing ``*`` matches a prefix
    user: str | None = None
    call_id: str | None = None
    #: Caller or callee signalling address
    ip: str | None = None
    category: str | None = None
    #: Calls with an alert of this rule
    rule: str | None = None
    #: Calls whose worst stream MOS is below this
    mos_below: float | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AlertFilter:
    start: datetime | None = None
    end: datetime | None = None
    severity: str | None = None
    rule: str | None = None
    #: quality, failure, security, learned (see ``rows.RULE_CATEGORIES``)
    category: str | None = None
    #: Source IP
    source: str | None = None
    limit: int = 50
    offset: int = 0


def _page(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(limit, MAX_LIMIT)), max(0, offset)


def _user_match(column: Any, user: str) -> ColumnElement[bool]:
    if user.endswith("*"):
        prefix = user[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(prefix + "%", escape="\\")  # type: ignore[no-any-return]
    return column == user  # type: ignore[no-any-return]


def _call_conditions(f: CallFilter) -> list[ColumnElement[bool]]:
    c = calls.c
    conditions: list[ColumnElement[bool]] = []
    if f.start is not None:
        conditions.append(c.start_ts >= f.start)
    if f.end is not None:
        conditions.append(c.start_ts < f.end)
    if f.user:
        conditions.append(or_(_user_match(c.from_user, f.user), _user_match(c.to_user, f.user)))
    if f.call_id:
        conditions.append(c.call_id == f.call_id)
    if f.ip:
        conditions.append(or_(c.caller_ip == f.ip, c.callee_ip == f.ip))
    if f.category:
        conditions.append(c.category == f.category)
    if f.rule:
        conditions.append(exists().where(alerts.c.call_id == c.call_id, alerts.c.rule == f.rule))
    if f.mos_below is not None:
        conditions.append(c.worst_mos < f.mos_below)
    return conditions


def search_calls(conn: Connection, f: CallFilter) -> CallPage:
    """Calls matching ``f``: problem calls first, then newest; with the total and category facets."""
    where = _call_conditions(f)
    limit, offset = _page(f.limit, f.offset)
    c = calls.c
    query = (
        select(calls)
        .where(*where)
        .order_by(c.problem.desc(), c.start_ts.desc(), c.call_id)
        .limit(limit)
        .offset(offset)
    )
    rows = [CallRow.from_row(r) for r in conn.execute(query).mappings()]
    facet_query = select(c.category, func.count()).where(*where).group_by(c.category)
    facets = {category: n for category, n in conn.execute(facet_query)}
    return CallPage(rows=rows, total=sum(facets.values()), facets=dict(sorted(facets.items())))


def _intervals(rows: Sequence[Any]) -> list[IntervalRow]:
    """Interval rows with each report's own loss (the reports are cumulative)."""
    previous: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    out = []
    for r in rows:
        lost_before, expected_before = previous[r["stream_id"]]
        expected = r["expected"] - expected_before
        lost = max(0, r["lost"] - lost_before)
        previous[r["stream_id"]] = (r["lost"], r["expected"])
        out.append(
            IntervalRow.from_row(r, interval_loss_ratio=min(1.0, lost / expected) if expected > 0 else 0.0)
        )
    return out


def call_detail(conn: Connection, call_id: str) -> CallDetail | None:
    """One call with its streams, interval reports, alerts and SIP messages (time order)."""
    row = conn.execute(select(calls).where(calls.c.call_id == call_id)).mappings().first()
    if row is None:
        return None
    s, i, a, m = streams.c, stream_intervals.c, alerts.c, sip_messages.c
    stream_rows = [
        StreamRow.from_row(r)
        for r in conn.execute(
            select(streams).where(s.call_id == call_id).order_by(s.first_ts, s.stream_id)
        ).mappings()
    ]
    stream_ids = [r.stream_id for r in stream_rows]
    interval_query = (
        select(stream_intervals)
        .where(or_(i.call_id == call_id, i.stream_id.in_(stream_ids)))
        .order_by(i.stream_id, i.ts)
    )
    intervals = sorted(
        _intervals(list(conn.execute(interval_query).mappings())), key=lambda r: (r.ts, r.stream_id)
    )
    alert_rows = [
        AlertRow.from_row(r)
        for r in conn.execute(
            select(alerts).where(a.call_id == call_id).order_by(a.first_ts, a.seq)
        ).mappings()
    ]
    messages = [
        MessageRow.from_row(r)
        for r in conn.execute(
            select(sip_messages).where(m.call_id == call_id).order_by(m.ts, m.frame, m.id)
        ).mappings()
    ]
    dropped = conn.execute(
        select(sip_message_counts.c.dropped).where(sip_message_counts.c.call_id == call_id)
    ).scalar_one_or_none()
    return CallDetail(
        call=CallRow.from_row(row),
        streams=stream_rows,
        intervals=intervals,
        alerts=alert_rows,
        messages=messages,
        messages_dropped=dropped or 0,
        record=dict(row["record"]),
    )


def _alert_conditions(f: AlertFilter) -> list[ColumnElement[bool]]:
    a = alerts.c
    table: list[tuple[Any, Any]] = [
        (f.severity, a.severity),
        (f.rule, a.rule),
        (f.category, a.category),
        (f.source, a.source_ip),
    ]
    conditions: list[ColumnElement[bool]] = [column == value for value, column in table if value]
    if f.start is not None:
        conditions.append(a.first_ts >= f.start)
    if f.end is not None:
        conditions.append(a.first_ts < f.end)
    return conditions


def search_alerts(conn: Connection, f: AlertFilter) -> AlertPage:
    """Alerts matching ``f``, newest first."""
    where = _alert_conditions(f)
    limit, offset = _page(f.limit, f.offset)
    a = alerts.c
    query: Select[Any] = (
        select(alerts).where(*where).order_by(a.first_ts.desc(), a.seq.desc()).limit(limit).offset(offset)
    )
    rows = [AlertRow.from_row(r) for r in conn.execute(query).mappings()]
    total = conn.execute(select(func.count()).select_from(alerts).where(*where)).scalar_one()
    return AlertPage(rows=rows, total=int(total))


def alert_detail(conn: Connection, alert_id: str) -> AlertDetail | None:
    """An alert and its evidence, resolved to stored SIP messages by (capture time, frame)."""
    row = conn.execute(select(alerts).where(alerts.c.alert_id == alert_id)).mappings().first()
    if row is None:
        return None
    alert = AlertRow.from_row(row)
    wanted = [(utc(float(e["ts"])), int(e["frame"])) for e in alert.evidence]
    m = sip_messages.c
    found: dict[tuple[datetime, int], MessageRow] = {}
    if wanted:
        query = select(sip_messages).where(tuple_(m.ts, m.frame).in_(wanted)).order_by(m.ts, m.id)
        for r in conn.execute(query).mappings():
            found.setdefault((r["ts"], r["frame"]), MessageRow.from_row(r))
    messages = [found[k] for k in wanted if k in found]
    unresolved = [e for e, k in zip(alert.evidence, wanted, strict=True) if k not in found]
    return AlertDetail(alert=alert, messages=messages, unresolved=unresolved)


def _minute(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("minute", column.op("AT TIME ZONE")("UTC")), "YYYY-MM-DD HH24:MI")
    return func.strftime(_MINUTE_FORMAT, column)


def overview(conn: Connection, since: datetime, until: datetime) -> Overview:
    """The operations picture for ``[since, until)``: volume, ASR, MOS spread, active calls, alerts."""
    c = calls.c
    window = and_(c.start_ts >= since, c.start_ts < until)
    active = conn.execute(
        select(func.count()).where(
            c.start_ts < until,
            c.state.in_(("answered", "completed", "in_progress")),
            or_(c.end_ts.is_(None), c.end_ts >= until),
        )
    ).scalar_one()
    minute = _minute(conn, c.start_ts).label("minute")
    per_minute = [
        MinuteCount(datetime.strptime(key, _MINUTE_FORMAT).replace(tzinfo=since.tzinfo or None), n)
        for key, n in conn.execute(
            select(minute, func.count()).where(window).group_by(minute).order_by(minute)
        )
    ]
    invites, answered, total = conn.execute(
        select(
            func.count().filter(c.method == "INVITE"),
            func.count().filter(and_(c.method == "INVITE", c.answer_ts.is_not(None))),
            func.count(),
        ).where(window)
    ).one()
    buckets = [
        func.sum(
            case(
                (and_(c.worst_mos >= low, c.worst_mos < high if high < 5.0 else c.worst_mos <= high), 1),
                else_=0,
            )
        )
        for low, high in pairwise(MOS_EDGES)
    ]
    counts = conn.execute(select(*buckets).where(window)).one()
    histogram = [
        MosBucket(low, high, int(n or 0)) for (low, high), n in zip(pairwise(MOS_EDGES), counts, strict=True)
    ]
    latest = search_alerts(conn, AlertFilter(start=since, end=until, limit=10)).rows
    return Overview(
        since=since,
        until=until,
        active_calls=int(active),
        calls=int(total),
        calls_per_minute=per_minute,
        answer_seizure_ratio=answered / invites if invites else None,
        mos_histogram=histogram,
        latest_alerts=latest,
    )


def alerts_after(conn: Connection, cursor: int, limit: int = 100) -> tuple[list[AlertRow], int]:
    """Alerts committed after ``cursor`` (insertion order), and the cursor to pass next time.

    Start with 0 for everything, or with :func:`latest_alert_cursor` for only what comes next.
    """
    a = alerts.c
    query = select(alerts).where(a.seq > cursor).order_by(a.seq).limit(max(1, min(limit, MAX_LIMIT)))
    rows = [AlertRow.from_row(r) for r in conn.execute(query).mappings()]
    return rows, (rows[-1].seq if rows else cursor)


def latest_alert_cursor(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(alerts.c.seq), 0))).scalar_one())
