"""Benchmark: ``callqual store`` with N members (one consumer group) vs one, side by side.

The same traffic as ``bench_store.py --service`` (the simulated day, seed 101, x8: 51,880 SIP
messages in 100,920 records), each record on the partition Kafka would give it (its real key:
Call-ID for events, calls and streams, alert id for alerts; ``--partitions`` per topic) and each
partition with the member the range assignor gives it. Every member is a process of its own
running ``StoreService.run`` over its share from an in-process source (no broker: the store's
own cost), all started together; the run ends when the last is idle. Rounds alternate which
N goes first, each into a fresh database of one PostgreSQL cluster (default durability).

Reported per run: SIP messages/s (wall, first start to last finish), client CPU (user+sys of
all members), server CPU (the PostgreSQL backends of that database, read from /proc before
the members disconnect), and the 1-minute load average before and after. With
``--statements``, pg_stat_statements' top statements by total time for the last run of each N.

Usage::

    python bench/bench_store_members.py --members 1,2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import zlib
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from bench_store import ListSource, _backends_cpu, copy_of, split, traffic  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from callqual.cli.gc_tuning import tune_gc_for_throughput  # noqa: E402
from callqual.simulator import simulate  # noqa: E402
from callqual.store.engine import open_store  # noqa: E402
from callqual.store.service import StoreMetrics, StoreService, StoreSettings, build_engine  # noqa: E402
from callqual.store.writer import Batch  # noqa: E402
from callqual.transport import TOPICS, Message  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

#: Records per transaction, as ``bench_store.py --service`` (48 transactions of ~1,000 messages for one)
BATCH_RECORDS = 2102


def keyed_records(batches: list[Batch], partitions: int) -> list[Message]:
    """The traffic as the topics hold it: each record's JSON, with its real key and partition."""
    out: list[Message] = []
    t = TOPICS
    for b in batches:
        kinds: tuple[tuple[str, list[Any], str], ...] = (
            (t.events, b.messages, "call_id"),
            (t.events, b.intervals, "call_id"),
            (t.calls, b.calls, "call_id"),
            (t.streams, b.streams, "call_id"),
            (t.alerts, b.alerts, "alert_id"),
        )
        for topic, records, key_field in kinds:
            for r in records:
                key = getattr(r, key_field) or ""
                partition = zlib.crc32(key.encode()) % partitions
                out.append(Message(topic, partition, len(out), key, r.model_dump_json().encode()))
    return out


def shares(records: list[Message], partitions: int, members: int) -> list[list[Message]]:
    """Each member's records (range assignment of every topic's partitions), in order."""
    owner = [p * members // partitions for p in range(partitions)]
    out: list[list[Message]] = [[] for _ in range(members)]
    for r in records:
        out[owner[r.partition]].append(r)
    return out


def _member(url: str, records: list[Message], start: MpEvent, done: Connection, release: MpEvent) -> None:
    """One member (a forked process): set up, wait for the start, run until idle, report, wait."""
    tune_gc_for_throughput()
    settings = StoreSettings(
        url=SecretStr(url),
        batch_size=BATCH_RECORDS,
        batch_interval_s=60.0,
        exit_when_idle_s=0.01,
        port=0,
    )
    engine = build_engine(settings)
    service = StoreService(engine, settings, StoreMetrics())
    service._migrated = True  # migrated by the parent before the start
    stop = threading.Event()
    source = ListSource(records, stop)
    start.wait()
    cpu = time.process_time()
    code = service.run(source, stop, poll_s=0.01)
    finished = time.perf_counter()
    done.send({"code": code, "acked": source.acked, "cpu_s": time.process_time() - cpu, "end": finished})
    # Connected until the parent has read the backends' CPU.
    release.wait(120)
    engine.dispose()


def run_members(url: str, parts: list[list[Message]]) -> dict[str, Any]:
    open_store(url).dispose()
    fork = multiprocessing.get_context("fork")
    start, release = fork.Event(), fork.Event()
    pipes = [fork.Pipe(duplex=False) for _ in parts]
    procs = [
        fork.Process(target=_member, args=(url, part, start, w, release))
        for part, (_, w) in zip(parts, pipes, strict=True)
    ]
    for p in procs:
        p.start()
    for _, w in pipes:
        w.close()  # a member that dies is an EOFError below, not a wait for ever
    time.sleep(1.0)  # every member set up and waiting
    load = os.getloadavg()[0]
    begin = time.perf_counter()
    start.set()
    results = [r.recv() for r, _ in pipes]
    wall = max(r["end"] for r in results) - begin
    server_cpu = _backends_cpu(url)
    release.set()
    for p in procs:
        p.join(60)
    records = sum(len(p) for p in parts)
    assert all(r["code"] == 0 for r in results) and sum(r["acked"] for r in results) == records, results
    n = sum(1 for p in parts for r in p if r.value.startswith(b'{"kind":"sip_message"'))
    return {
        "members": len(parts),
        "messages": n,
        "records": records,
        "seconds": wall,
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "member_cpu_s": [round(r["cpu_s"], 2) for r in results],
        "server_cpu_s": server_cpu,
        "per_s": n / wall,
        "load_average_1m": [load, os.getloadavg()[0]],
    }


def top_statements(url: str, limit: int = 12) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT calls, round(total_exec_time::numeric, 1), rows,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [{"calls": c, "total_ms": float(t), "rows": r, "query": q} for c, t, r, q in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, help="traffic (default: simulated day, seed 101)")
    ap.add_argument("--copies", type=int, default=8, help="copies of the traffic (default 8)")
    ap.add_argument("--members", default="1,2", help="member counts compared (default 1,2)")
    ap.add_argument("--partitions", type=int, default=6, help="partitions per topic (default 6)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--statements", action="store_true", help="pg_stat_statements' top statements")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "store_members.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-members-"))
    capture = args.capture
    if capture is None:
        capture = work / "day.pcap"
        simulate("day", capture, seed=101)
    msgs, ivs, report = traffic(capture)
    batches = [b for k in range(args.copies) for b in split(copy_of(k, msgs, ivs, report), 1000)]
    records = keyed_records(batches, args.partitions)
    counts = [int(n) for n in args.members.split(",")]
    server = PostgresServer(durable=True)
    out: dict[str, Any] = {"runs": [], "statements": {}}
    try:
        if args.statements:
            with (server.data / "postgresql.conf").open("a") as conf:
                conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
            server.stop()
            server.start()
        for k in range(args.rounds):
            for n in counts if k % 2 == 0 else counts[::-1]:
                url = server.create_database()
                if args.statements:
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                        conn.execute("SELECT pg_stat_statements_reset()")
                r = run_members(url, shares(records, args.partitions, n))
                r["round"] = k + 1
                out["runs"].append(r)
                if args.statements:
                    out["statements"][str(n)] = top_statements(url)
                print(
                    f"round {k + 1} members {n}: {r['messages']} msgs ({r['records']} records): "
                    f"{r['per_s']:>7.0f} msg/s ({r['seconds']:.2f} s, client CPU {r['client_cpu_s']:.2f} s "
                    f"{r['member_cpu_s']}, server CPU {r['server_cpu_s']:.2f} s, load "
                    f"{r['load_average_1m'][0]:.1f}-{r['load_average_1m'][1]:.1f})",
                    flush=True,
                )
    finally:
        server.close()
    for n in counts:
        runs = [r for r in out["runs"] if r["members"] == n]
        print(
            f"members {n}: median {statistics.median(r['per_s'] for r in runs):.0f} msg/s, client CPU "
            f"{statistics.median(r['client_cpu_s'] for r in runs):.2f} s, server CPU "
            f"{statistics.median(r['server_cpu_s'] for r in runs):.2f} s"
        )
    for n, statements in out["statements"].items():
        print(f"top statements, members {n}:")
        for s in statements:
            print(f"  {s['total_ms']:>9.1f} ms {s['calls']:>6} calls {s['rows']:>8} rows  {s['query']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
