"""The SIP messages of a batch into the store: bounded per call, replays skipped, retransmissions flagged.

A message's key covers its Call-ID, so only a call with messages stored can
hold a stored copy of a new one: the calls' counts are read first, and the
look-ups of stored messages (replays; earlier copies of a retransmission)
cover those calls only. What the per-call bound leaves out is counted in
``sip_message_counts``, with the first leg-correlation headers seen.
"""

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Connection, select, update
from sqlalchemy.sql.expression import ColumnElement

from callqual.store import rows as wire
from callqual.store.bulk import pg_copy, pg_upsert, sqlite_insert_new, sqlite_upsert
from callqual.store.schema import sip_message_counts, sip_messages

__all__ = ["RETRANSMISSION_WINDOW", "Among", "MessageWrites", "WriteStats"]

#: How far back a repeated message counts as a retransmission (RFC 3261: 64*T1 = 32 s, doubled)
RETRANSMISSION_WINDOW = timedelta(seconds=64)

#: ``column IN values`` as the engine best says it, in one or more conditions (``StoreWriter._among``)
Among = Callable[[Column[Any], Sequence[Any]], Iterator[ColumnElement[bool]]]


@dataclass(slots=True)
class WriteStats:
    """What a write did: new SIP messages stored, messages over the per-call bound not stored."""

    messages_stored: int = 0
    messages_dropped: int = 0
    #: Call-IDs whose new messages carried leg-correlation headers (their call rows are refreshed)
    header_calls: set[str] = field(default_factory=set)

    def add(self, other: "WriteStats") -> None:
        self.messages_stored += other.messages_stored
        self.messages_dropped += other.messages_dropped
        # header_calls is per write (it drives that write's refresh): not accumulated, so a
        # long run's totals stay small.


class MessageWrites:
    """Writes a batch's SIP message rows inside the writer's transaction."""

    def __init__(self, postgres: bool, max_per_call: int, among: Among) -> None:
        self.postgres = postgres
        self.max_per_call = max_per_call
        self._among = among

    def write(self, conn: Connection, new_rows: list[dict[str, Any]]) -> WriteStats:
        """New messages up to the per-call bound; replays of stored ones are skipped, not counted.

        The calls' counts are read first: only a call with messages stored can hold a stored copy
        of one of these (a message's key covers its Call-ID), so the look-up of stored messages
        covers those calls' messages only (it was 14 % of the server's time, finding none).
        """
        stats = WriteStats()
        if not new_rows:
            return stats
        by_id = {r["id"]: r for r in new_rows}
        counts: dict[str, int] = {}
        call_ids = list({r["call_id"]: None for r in by_id.values()})
        for among in self._among(sip_message_counts.c.call_id, call_ids):
            query = select(sip_message_counts.c.call_id, sip_message_counts.c.stored).where(among)
            counts.update((call_id, stored) for call_id, stored in conn.execute(query))
        maybe_stored = [r for r in by_id.values() if counts.get(r["call_id"], 0) > 0]
        stored_ids = self._stored_ids(conn, maybe_stored)
        fresh = sorted((r for i, r in by_id.items() if i not in stored_ids), key=lambda r: (r["ts"], r["id"]))
        if not fresh:
            return stats
        per_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in fresh:
            per_call[row["call_id"]].append(row)
        keep: list[dict[str, Any]] = []
        count_rows: list[dict[str, Any]] = []
        for call_id, rows in per_call.items():
            room = max(0, self.max_per_call - counts.get(call_id, 0))
            kept, over = rows[:room], len(rows) - min(room, len(rows))
            keep.extend(kept)
            stats.messages_stored += len(kept)
            stats.messages_dropped += over
            if any(r[h] is not None for r in rows for h in wire.CORRELATION_HEADERS):
                stats.header_calls.add(call_id)
            count_rows.append(
                {
                    "call_id": call_id,
                    "stored": len(kept),
                    "dropped": over,
                    "last_ts": rows[-1]["ts"],
                    # First value seen of each leg-correlation header (kept or not)
                    **{
                        h: next((r[h] for r in rows if r[h] is not None), None)
                        for h in wire.CORRELATION_HEADERS
                    },
                }
            )
        if keep:
            # Only calls with messages stored already can hold an earlier copy of a new one.
            self._flag_retransmissions(conn, keep, {c for c, n in counts.items() if n > 0})
            if self.postgres:
                pg_copy(conn, sip_messages, keep)
            else:
                sqlite_insert_new(conn, sip_messages, keep)
        if count_rows:
            # In Call-ID order: two writers upserting the same calls' counts lock them in the same order.
            count_rows.sort(key=lambda r: str(r["call_id"]))
            if self.postgres:
                # Calls without a count row (read above) get theirs by COPY; a rival adding one
                # meanwhile is a unique violation, written again (``conflicts``).
                fresh_counts = [r for r in count_rows if r["call_id"] not in counts]
                count_rows = [r for r in count_rows if r["call_id"] in counts]
                if fresh_counts:
                    pg_copy(conn, sip_message_counts, fresh_counts)
            if count_rows:
                table = sip_message_counts.name
                later = "greatest" if self.postgres else "max"
                counts_update = {
                    "stored": f"{table}.stored + excluded.stored",
                    "dropped": f"{table}.dropped + excluded.dropped",
                    "last_ts": f"{later}({table}.last_ts, excluded.last_ts)",
                    **{h: f"coalesce({table}.{h}, excluded.{h})" for h in wire.CORRELATION_HEADERS},
                }
                upsert = pg_upsert if self.postgres else sqlite_upsert
                upsert(conn, sip_message_counts, count_rows, ("call_id",), counts_update)
        return stats

    def _stored_ids(self, conn: Connection, rows: list[dict[str, Any]]) -> set[int]:
        """Which of ``rows`` are stored already; bounded by the batch's time span, so PostgreSQL
        only looks into the partitions of those days."""
        if not rows:
            return set()
        m = sip_messages.c
        low, high = min(r["ts"] for r in rows), max(r["ts"] for r in rows)
        found: set[int] = set()
        for among in self._among(m.id, [r["id"] for r in rows]):
            query = select(m.id).where(m.ts >= low, m.ts <= high, among)
            found.update(conn.execute(query).scalars())
        return found

    def _flag_retransmissions(
        self, conn: Connection, fresh: list[dict[str, Any]], stored_calls: set[str]
    ) -> None:
        """Set ``retransmission`` on ``fresh`` rows, and on stored rows a late arrival precedes.

        A message is a retransmission when an earlier stored message of its call has the same
        transaction, direction and start line (``txn_key``) at most RETRANSMISSION_WINDOW
        before it. The window (RFC 3261 timers end transactions within 64*T1 = 32 s) bounds
        the rows looked at, and makes the flag independent of how input was cut into batches.
        """
        if not fresh:
            return
        window = RETRANSMISSION_WINDOW
        low = min(r["ts"] for r in fresh) - window
        high = max(r["ts"] for r in fresh) + window
        m = sip_messages.c
        groups: dict[tuple[str, int], list[tuple[Any, int, dict[str, Any] | None, bool]]] = defaultdict(list)
        for among in self._among(m.call_id, sorted({r["call_id"] for r in fresh} & stored_calls)):
            query = select(m.call_id, m.txn_key, m.ts, m.id, m.retransmission).where(
                m.ts >= low, m.ts <= high, among
            )
            for call_id, txn_key, ts, id_, flagged in conn.execute(query):
                groups[(call_id, txn_key)].append((ts, id_, None, bool(flagged)))
        for new in fresh:
            groups[(new["call_id"], new["txn_key"])].append((new["ts"], new["id"], new, False))
        newly: list[int] = []
        for items in groups.values():
            items.sort(key=lambda item: (item[0], item[1]))
            for k, (ts, id_, target, flagged) in enumerate(items):
                repeat = k > 0 and ts - items[k - 1][0] <= window
                if target is not None:
                    target["retransmission"] = repeat
                elif repeat and not flagged:
                    newly.append(id_)
        for among in self._among(m.id, newly):
            conn.execute(
                update(sip_messages).where(m.ts >= low, m.ts <= high, among).values(retransmission=True)
            )
