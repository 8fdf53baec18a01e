"""Benchmark: the call store's ingest rate and its lookup latency as the table grows.

1. **Ingest** (SIP messages/s, with the call, stream, interval and alert rows of the same
   traffic): ``StoreWriter.write_batch`` in batches of about 1,000 messages, as ``callqual
   store`` writes them, into SQLite and into PostgreSQL (a cluster of its own, default
   durability: fsync and synchronous commit on), through ``PipelinedWriter`` as ``analyze
   --store`` does (``--depth``: 2 batches in flight on PostgreSQL, in line on SQLite; ``--depth
   0``: ``write_batch`` in line, which also runs on older checkouts), with the CLIs' GC
   tuning. Side by side with a reference: the same
   message rows bulk-loaded with no logic at all (SQLite ``executemany``, PostgreSQL ``COPY``).
   Targets: >= 10,000/s SQLite, >= 20,000/s PostgreSQL.
   With ``--service``: the ``callqual store`` service end to end instead (decoding each record
   from its Kafka JSON, batching, writing, acknowledging), fed by an in-process source over the
   same traffic, side by side in one run: ``--writes-in-flight 0`` (written in the consuming
   loop) and K (a writer thread, the default), alternating which goes first per round.
2. **Lookup** (PostgreSQL): a Call-ID lookup (the call's messages in time order) and a number
   lookup (messages from or to a user, newest 50) at growing ``sip_messages`` sizes, filled by
   ``COPY`` with distinct Call-IDs and numbers. Target: < 100 ms at 10 M messages.

The traffic is a simulated day (``callqual simulate --scenario day --seed 101``: 5,975 SIP
messages, 1,264 calls, 737 streams, 231 alerts) repeated with shifted times and Call-IDs.

Usage::

    python bench/bench_store.py                       # ingest x8, lookups at 100 k and 1 M
    python bench/bench_store.py --sizes 100000,1000000,3000000,10000000
    python bench/bench_store.py --service --engines postgresql --sizes "" --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from callqual.cli.gc_tuning import tune_gc_for_throughput  # noqa: E402
from callqual.collector.capture.pcap_file import open_capture  # noqa: E402
from callqual.pipeline.embedded import EmbeddedPipeline  # noqa: E402
from callqual.schemas import AnalysisReport, AnyEvent, RtpStreamReport, SipMessageEvent  # noqa: E402
from callqual.simulator import simulate  # noqa: E402
from callqual.store.engine import open_store  # noqa: E402
from callqual.store.rows import message_row  # noqa: E402
from callqual.store.schema import sip_messages  # noqa: E402
from callqual.store.service import StoreMetrics, StoreService, StoreSettings, build_engine  # noqa: E402
from callqual.store.writer import Batch, StoreWriter  # noqa: E402
from callqual.transport import TOPICS, Message  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

BATCH_MESSAGES = 1000
COLUMNS = [c.name for c in sip_messages.c]


def traffic(capture: Path) -> tuple[list[SipMessageEvent], list[RtpStreamReport], AnalysisReport]:
    kept: list[AnyEvent] = []

    def keep(event: AnyEvent) -> None:
        if event.kind == "sip_message" or (event.kind == "rtp_stream" and not event.final):
            kept.append(event)

    pipeline = EmbeddedPipeline(on_event=keep)
    with open_capture(capture) as cap:
        pipeline.run(cap)
        pipeline.finish()
        report = pipeline.report(str(capture))
    messages = [e for e in kept if isinstance(e, SipMessageEvent)]
    intervals = [e for e in kept if isinstance(e, RtpStreamReport)]
    return messages, intervals, report


def copy_of(k: int, msgs: list[SipMessageEvent], ivs: list[RtpStreamReport], r: AnalysisReport) -> Batch:
    """Copy ``k`` of the traffic: times shifted by k x 6 h, Call-IDs and alert ids suffixed."""
    d, s = k * 6 * 3600.0, f"~{k}"

    def cid(call_id: str | None) -> str | None:
        return None if call_id is None else call_id + s

    return Batch(
        messages=[m.model_copy(update={"call_id": m.call_id + s, "ts": m.ts + d}) for m in msgs],
        intervals=[
            m.model_copy(
                update={"call_id": cid(m.call_id), "first_ts": m.first_ts + d, "last_ts": m.last_ts + d}
            )
            for m in ivs
        ],
        calls=[
            c.model_copy(
                update={
                    "call_id": c.call_id + s,
                    "start_ts": c.start_ts + d,
                    "end_ts": None if c.end_ts is None else c.end_ts + d,
                    "answer_ts": None if c.answer_ts is None else c.answer_ts + d,
                }
            )
            for c in r.calls
        ],
        streams=[
            x.model_copy(
                update={"call_id": cid(x.call_id), "first_ts": x.first_ts + d, "last_ts": x.last_ts + d}
            )
            for x in r.streams
        ],
        alerts=[
            a.model_copy(
                update={
                    "alert_id": a.alert_id + s,
                    "call_id": cid(a.call_id),
                    "first_ts": a.first_ts + d,
                    "last_ts": a.last_ts + d,
                }
            )
            for a in r.alerts
        ],
    )


def split(batch: Batch, size: int) -> list[Batch]:
    """Batches of ~``size`` messages, each with its share of the other rows."""
    parts = max(1, len(batch.messages) // size)

    def share(items: list[Any], i: int) -> list[Any]:
        return items[i * len(items) // parts : (i + 1) * len(items) // parts]

    return [
        Batch(
            calls=share(batch.calls, i),
            streams=share(batch.streams, i),
            intervals=share(batch.intervals, i),
            alerts=share(batch.alerts, i),
            messages=share(batch.messages, i),
        )
        for i in range(parts)
    ]


def _backend_cpu(pid: int | None) -> float:
    """User+system CPU seconds of a PostgreSQL backend so far (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_writer(url: str, batches: list[Batch], depth: int) -> dict[str, float]:
    """The batches written in order: ``depth`` 0 by ``write_batch`` in line, else by a
    ``PipelinedWriter`` (rows of the next batch built while the writer thread writes)."""
    engine = open_store(url)
    writer = StoreWriter(engine)
    n = sum(len(b.messages) for b in batches)
    other = sum(len(b) - len(b.messages) for b in batches)
    postgres = engine.dialect.name == "postgresql"
    # The server's share: every backend of the database (the pool's connections stay open).
    server_cpu = _backends_cpu(url) if postgres else 0.0
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    if depth:
        from callqual.store.pipelined import PipelinedWriter  # here: --depth 0 runs on older checkouts

        with PipelinedWriter(writer, depth) as pipe:
            for b in batches:
                pipe.submit(b)
    else:
        for b in batches:
            writer.write_batch(b)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = (_backends_cpu(url) - server_cpu) if postgres else 0.0
    engine.dispose()
    return {
        "depth": depth,
        "messages": n,
        "other_rows": other,
        "seconds": wall,
        "cpu_s": cpu,
        "server_cpu_s": server_cpu,
        "per_s": n / wall,
        "load_average_1m": [load, os.getloadavg()[0]],
    }


class ListSource:
    """An event source over records encoded in advance: the service's own cost, no broker.

    Once the list is done it sets ``done`` (the service's stop event: it writes what it holds and
    returns). An idle limit ended runs early on a loaded box: a loop descheduled for longer than
    the limit between a write and its idle check stopped with input left (seen at load 10)."""

    def __init__(self, messages: list[Message], done: threading.Event) -> None:
        self._all = messages
        self._messages = iter(messages)
        self._done = done
        #: The highest offset acknowledged per (topic, partition): an ack covers what came before
        self._acked: dict[tuple[str, int], int] = {}

    def poll(self, timeout: float) -> Message | None:
        message = next(self._messages, None)
        if message is None:
            self._done.set()
        return message

    def ack(self, message: Message) -> None:
        key = (message.topic, message.partition)
        self._acked[key] = max(message.offset, self._acked.get(key, -1))

    @property
    def acked(self) -> int:
        """Messages acknowledged, each by its own ack or a later one on its partition."""
        return sum(1 for m in self._all if m.offset <= self._acked.get((m.topic, m.partition), -1))

    def commit(self) -> None:
        return None

    def close(self) -> None:
        return None


def kafka_records(batches: list[Batch]) -> list[Message]:
    """The traffic as ``callqual store`` reads it: each record's JSON on its topic, batch by batch."""
    out: list[Message] = []
    t = TOPICS
    for b in batches:
        kinds: tuple[tuple[str, list[Any]], ...] = (
            (t.events, b.messages),
            (t.events, b.intervals),
            (t.calls, b.calls),
            (t.streams, b.streams),
            (t.alerts, b.alerts),
        )
        for topic, records in kinds:
            for r in records:
                out.append(Message(topic, 0, len(out), r.call_id, r.model_dump_json().encode()))
    return out


def _backends_cpu(url: str) -> float:
    """User+system CPU of every other backend now connected to ``url``'s database."""
    with psycopg.connect(url) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(_backend_cpu(int(pid)) for (pid,) in pids)


def ingest_service(url: str, records: list[Message], batch_size: int, in_flight: int) -> dict[str, Any]:
    """``StoreService.run`` over ``records`` until idle; the database migrated beforehand."""
    open_store(url).dispose()
    settings = StoreSettings(
        url=SecretStr(url),
        batch_size=batch_size,
        batch_interval_s=60.0,
        writes_in_flight=in_flight,
        port=0,
    )
    engine = build_engine(settings)
    service = StoreService(engine, settings, StoreMetrics())
    stop = threading.Event()
    source = ListSource(records, stop)
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    code = service.run(source, stop, poll_s=0.01)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # The engine's pooled connections are still open: their backends did the server's share.
    server_cpu = _backends_cpu(url) if engine.dialect.name == "postgresql" else 0.0
    engine.dispose()
    assert code == 0 and source.acked == len(records), (code, source.acked)
    n = sum(1 for r in records if r.value.startswith(b'{"kind":"sip_message"'))
    return {
        "writes_in_flight": in_flight,
        "messages": n,
        "records": len(records),
        "seconds": wall,
        "cpu_s": cpu,
        "server_cpu_s": server_cpu,
        "per_s": n / wall,
        "load_average_1m": [load, os.getloadavg()[0]],
    }


def service_rounds(args: argparse.Namespace, server: PostgresServer, work: Path, batches: list[Batch]) -> Any:
    records = kafka_records(batches)
    # As ``callqual store`` runs (its CLI tunes the collector); the input made in advance is
    # frozen out of the scans too, as a broker's records would not be in this process at all.
    tune_gc_for_throughput()
    batch_size = round(len(records) / len(batches))
    out: dict[str, list[dict[str, Any]]] = {}
    for engine in args.engines.split(","):
        runs = out.setdefault(engine, [])
        for k in range(args.rounds):
            order = (0, args.writes_in_flight) if k % 2 == 0 else (args.writes_in_flight, 0)
            for in_flight in order:
                url = (
                    server.create_database()
                    if engine == "postgresql"
                    else f"sqlite:///{work / f'svc-{k}-{in_flight}.db'}"
                )
                r = ingest_service(url, records, batch_size, in_flight)
                runs.append(r)
                print(
                    f"service {engine:10s} round {k + 1} writes-in-flight {in_flight}: {r['messages']} msgs "
                    f"({r['records']} records, batches of {batch_size}): {r['per_s']:>7.0f} msg/s "
                    f"({r['seconds']:.2f} s, client CPU {r['cpu_s']:.2f} s, server CPU "
                    f"{r['server_cpu_s']:.2f} s, load {r['load_average_1m'][0]:.1f}-"
                    f"{r['load_average_1m'][1]:.1f})",
                    flush=True,
                )
    return out


def _sqlite_text(row: dict[str, Any]) -> list[Any]:
    return [
        row[c].strftime("%Y-%m-%d %H:%M:%S.%f") if c == "ts" else row[c]  # SQLAlchemy's SQLite format
        for c in COLUMNS
    ]


def ingest_reference(url: str, batches: list[Batch], path: Path | None) -> dict[str, float]:
    """The same message rows, bulk-loaded with no logic (rows built outside the timing)."""
    open_store(url).dispose()  # same schema and indexes
    rows: list[list[Any]] = []
    for b in batches:
        for m in b.messages:
            row = message_row(m)
            row["retransmission"] = False
            rows.append(_sqlite_text(row) if path is not None else [row[c] for c in COLUMNS])
    wall = time.perf_counter()
    if path is not None:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        marks = ", ".join("?" for _ in COLUMNS)
        for i in range(0, len(rows), BATCH_MESSAGES):
            conn.executemany(
                f"INSERT INTO sip_messages ({', '.join(COLUMNS)}) VALUES ({marks})", rows[i : i + 1000]
            )
            conn.commit()
        conn.close()
    else:
        _ensure_partitions(url, {r[COLUMNS.index("ts")].date() for r in rows})
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
            for i in range(0, len(rows), BATCH_MESSAGES):
                with (
                    conn.cursor() as cur,
                    cur.copy(f"COPY sip_messages ({', '.join(COLUMNS)}) FROM STDIN") as cp,
                ):
                    for row in rows[i : i + BATCH_MESSAGES]:
                        cp.write_row(row)
                conn.commit()
    wall = time.perf_counter() - wall
    return {"messages": len(rows), "seconds": wall, "per_s": len(rows) / wall}


def _ensure_partitions(url: str, days: set[Any]) -> None:
    from callqual.store.partitions import ensure_partitions

    engine = open_store(url)
    with engine.begin() as conn:
        ensure_partitions(conn, days)
    engine.dispose()


def fill(url: str, base: list[dict[str, Any]], start: int, stop: int) -> float:
    """COPY synthetic messages ``start..stop`` (copies of ``base`` with their own Call-IDs and numbers)."""
    n = len(base)
    ts_col = COLUMNS.index("ts")
    days = set()
    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        i = start
        while i < stop:
            chunk_end = min(stop, i + 50_000)
            rows = []
            for j in range(i, chunk_end):
                k, b = divmod(j, n)
                row = base[b]
                values = [row[c] for c in COLUMNS]
                values[COLUMNS.index("id")] = j + 1
                values[COLUMNS.index("call_id")] = f"{row['call_id']}~{k}"
                values[ts_col] = row["ts"] + (k % 30) * _DAY + (k // 30) * _SECOND
                for c in ("from_user", "to_user"):
                    if row[c] is not None:
                        values[COLUMNS.index(c)] = f"{row[c]}{k}"
                rows.append(values)
                days.add(values[ts_col].date())
            _ensure_partitions(url, days)
            with conn.cursor() as cur, cur.copy(f"COPY sip_messages ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for values in rows:
                    cp.write_row(values)
            conn.commit()
            i = chunk_end
    return time.perf_counter() - t


def lookups(url: str, base: list[dict[str, Any]], total: int, samples: int = 100) -> dict[str, Any]:
    rng = random.Random(7)
    n = len(base)
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        conn.execute("ANALYZE sip_messages")
        by_call, by_number = [], []
        for _ in range(samples):
            j = rng.randrange(total)
            k, b = divmod(j, n)
            call_id = f"{base[b]['call_id']}~{k}"
            t = time.perf_counter()
            rows = conn.execute(
                "SELECT id, ts, frame, src_ip, dst_ip, first_line, raw FROM sip_messages"
                " WHERE call_id = %s ORDER BY ts, id",
                (call_id,),
            ).fetchall()
            by_call.append((time.perf_counter() - t) * 1000)
            assert rows, call_id
            user = next(
                f"{base[x % n][c]}{k}"
                for x in range(b, b + n)
                for c in ("from_user", "to_user")
                if base[x % n][c]
            )
            t = time.perf_counter()
            conn.execute(
                "SELECT id, ts, call_id, first_line FROM sip_messages"
                " WHERE from_user = %s OR to_user = %s ORDER BY ts DESC LIMIT 50",
                (user, user),
            ).fetchall()
            by_number.append((time.perf_counter() - t) * 1000)
        size = conn.execute("SELECT pg_total_relation_size('sip_messages')").fetchone()
        parts = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = 'sip_messages'"
        ).fetchone()
    for name, values in (("call_id", by_call), ("number", by_number)):
        values.sort()
        out[name] = {"median_ms": statistics.median(values), "p95_ms": values[int(0.95 * len(values)) - 1]}
    out["table_gb"] = round(float((size[0] if size else 0) + (parts[0] if parts else 0)) / 1e9, 2)
    return out


_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)


def _depth(args: argparse.Namespace, engine: str) -> int:
    """``--depth``, or what ``analyze --store`` uses for ``engine``."""
    if args.depth is not None:
        return int(args.depth)
    from callqual.store.embedded import PIPELINE_DEPTH  # here: --depth 0 runs on older checkouts

    return PIPELINE_DEPTH.get(engine, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, help="traffic to ingest (default: simulated day, seed 101)")
    ap.add_argument("--copies", type=int, default=8, help="copies of the traffic ingested (default 8)")
    ap.add_argument("--sizes", default="100000,1000000", help="sip_messages sizes for lookups ('' for none)")
    ap.add_argument("--batch-messages", type=int, default=BATCH_MESSAGES, help="SIP messages per transaction")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--engines", default="sqlite,postgresql", help="engines to ingest into (default both)")
    ap.add_argument(
        "--service", action="store_true", help="ingest through StoreService, in-line vs writer thread"
    )
    ap.add_argument(
        "--writes-in-flight", type=int, default=2, help="the writer thread's bound with --service"
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the --service comparison")
    ap.add_argument(
        "--depth",
        type=int,
        help="writer: batches in flight (0: write_batch in line; default: as analyze --store, 2 for"
        " PostgreSQL, 0 for SQLite)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    capture = args.capture
    if capture is None:
        capture = work / "day.pcap"
        simulate("day", capture, seed=101)
    msgs, ivs, report = traffic(capture)
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    server = PostgresServer(durable=True)
    try:
        batches = [
            b for k in range(args.copies) for b in split(copy_of(k, msgs, ivs, report), args.batch_messages)
        ]
        if args.service:
            results["service"] = service_rounds(args, server, work, batches)
        elif not args.skip_ingest:
            # As ``callqual analyze --store`` and ``callqual store`` run (their CLIs tune the
            # collector); the input made in advance is frozen out of the scans.
            tune_gc_for_throughput()
            engines = args.engines.split(",")
            if "sqlite" in engines:
                lite = work / "ours.db"
                results["sqlite"] = ingest_writer(f"sqlite:///{lite}", batches, _depth(args, "sqlite"))
                results["sqlite_reference"] = ingest_reference(
                    f"sqlite:///{work / 'ref.db'}", batches, work / "ref.db"
                )
            if "postgresql" in engines:
                results["postgresql"] = ingest_writer(
                    server.create_database(), batches, _depth(args, "postgresql")
                )
                results["postgresql_reference"] = ingest_reference(server.create_database(), batches, None)
            for engine in engines:
                ours, ref = results[engine], results[f"{engine}_reference"]
                print(
                    f"ingest {engine:10s} batches of {args.batch_messages}, depth {ours['depth']}: "
                    f"{ours['messages']:>7} msgs + {ours['other_rows']} other rows: "
                    f"{ours['per_s']:>8.0f} msg/s ({ours['seconds']:.1f} s, CPU {ours['cpu_s']:.2f} s, "
                    f"server CPU {ours['server_cpu_s']:.2f} s, load {ours['load_average_1m'][0]:.1f}-"
                    f"{ours['load_average_1m'][1]:.1f}); "
                    f"reference {ref['per_s']:>8.0f} msg/s; ratio {ref['per_s'] / ours['per_s']:.2f}x",
                    flush=True,
                )
        url = server.create_database()
        open_store(url).dispose()
        base = []
        for m in msgs:
            row = message_row(m)
            row["retransmission"] = False
            base.append(row)
        filled = 0
        results["lookups"] = {}
        for size in sorted(int(s) for s in args.sizes.split(",") if s):
            seconds = fill(url, base, filled, size)
            filled = size
            res = lookups(url, base, size)
            res["fill_s"] = round(seconds, 1)
            results["lookups"][size] = res
            print(
                f"lookup at {size:>9,} messages ({res['table_gb']} GB): Call-ID median "
                f"{res['call_id']['median_ms']:.2f} ms p95 {res['call_id']['p95_ms']:.2f} ms; number median "
                f"{res['number']['median_ms']:.2f} ms p95 {res['number']['p95_ms']:.2f} ms "
                f"(filled in {seconds:.0f} s)",
                flush=True,
            )
    finally:
        server.close()
    print(json.dumps(results, default=str))
    print(f"load average during the run: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
