"""Web UI timings over a call store, each beside its reference (the store query alone).

    python bench/bench_ui.py [--alerts 100000] [--repeat 30] [--engine sqlite|postgresql]

1. A call page with 500 SIP messages (a demo call topped up with in-dialog INFO/200 pairs):
   GET /calls/{id} over HTTP vs ``call_detail`` alone (and ``render_ladder`` alone).
2. The error log over N alerts: GET /alerts (first page, a deep page, a filtered page) vs
   ``search_alerts`` alone.
3. Live feed: an SSE client on /events/alerts; time from the writer's commit returning to the
   event arriving (default poll 0.25 s).
The store is SQLite, or PostgreSQL in a cluster of its own (``--engine postgresql``). The server
is uvicorn in a thread of this process, the client httpx; medians and p95 in ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.schemas import Alert, SipMessageEvent  # noqa: E402
from callqual.store import queries as q  # noqa: E402
from callqual.store.embedded import analyze_into_store  # noqa: E402
from callqual.store.engine import open_store  # noqa: E402
from callqual.store.views import CallDetail  # noqa: E402
from callqual.store.writer import Batch, StoreWriter  # noqa: E402
from callqual.ui.app import create_app  # noqa: E402
from callqual.ui.ladder import render_ladder  # noqa: E402
from callqual.ui.settings import UiSettings  # noqa: E402
from callqual.ui.urls import call_url  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402
from tests.ui.ui_server import serving  # noqa: E402

RULES = ["call_failed", "packet_loss", "low_mos", "high_jitter", "sip_scanner", "no_media"]
SEVERITIES = ["info", "warning", "critical"]
START = datetime(2024, 3, 1, tzinfo=UTC)
Timing = tuple[float, float]


def timed(fn: Callable[[], object], repeat: int) -> Timing:
    """Median and p95 wall time of ``fn`` in ms (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _message(call_id: str, i: int, j: int, ts: float, ends: tuple[str, str]) -> SipMessageEvent:
    src, dst = ends
    first = "INFO sip:x@example.net SIP/2.0" if j == 0 else "SIP/2.0 200 OK"
    raw = (
        f"{first}\r\nVia: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-bench-{i}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {100 + i} INFO\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    return SipMessageEvent(
        frame=10_000_000 + 2 * i + j, ts=ts, src_ip=src, src_port=5060, dst_ip=dst, dst_port=5060,
        transport="udp", first_line=first, is_request=j == 0, method="INFO" if j == 0 else None,
        status_code=None if j == 0 else 200, call_id=call_id, cseq_num=100 + i, cseq_method="INFO",
        size=len(raw), raw=raw,
    )  # fmt: skip


def long_call(engine: Engine, writer: StoreWriter, target: int) -> CallDetail:
    """A poor-quality demo call with in-dialog INFO/200 pairs added up to ``target`` messages."""
    with engine.connect() as conn:
        call_id = q.search_calls(conn, q.CallFilter(category="poor_quality", limit=1)).rows[0].call_id
        detail = q.call_detail(conn, call_id)
    assert detail is not None
    last = detail.messages[-1]
    pairs = (target - len(detail.messages) + 1) // 2  # one over when odd: the store keeps 500 (its bound)
    events = [
        _message(call_id, i, j, last.ts.timestamp() + 0.02 * (i + 1) + 0.001 * j, ends)
        for i in range(pairs)
        for j, ends in enumerate([(last.src_ip, last.dst_ip), (last.dst_ip, last.src_ip)])
    ]
    writer.write_batch(Batch(messages=events))
    with engine.connect() as conn:
        full = q.call_detail(conn, call_id)
    assert full is not None and len(full.messages) == target
    return full


def fill_alerts(writer: StoreWriter, n: int) -> float:
    """``n`` alerts of mixed rule and severity, written in batches; seconds taken."""
    t0 = time.perf_counter()
    for lo in range(0, n, 5000):
        batch = [
            Alert(
                alert_id=f"bench-{i:08d}", rule=RULES[i % len(RULES)], severity=SEVERITIES[i % 3],  # type: ignore[arg-type]
                call_id=None, source_ip=f"198.51.100.{i % 250}", first_ts=START.timestamp() + i,
                last_ts=START.timestamp() + i, summary=f"bench alert {i}",
            )
            for i in range(lo, min(lo + 5000, n))
        ]  # fmt: skip
        writer.write_batch(Batch(alerts=batch))
    return time.perf_counter() - t0


def sse_latency(base: str, writer: StoreWriter, cursor: int, count: int) -> list[float]:
    """Write ``count`` alerts one by one; ms from each commit to its event on an open stream."""
    received: dict[str, float] = {}
    ready = threading.Event()

    def listen() -> None:
        params = {"after": cursor, "rule": "sip_flood"}
        with (
            httpx.Client(timeout=60) as client,
            client.stream("GET", base + "/events/alerts", params=params) as r,
        ):
            ready.set()
            for line in r.iter_lines():
                found = re.search(r"sse-bench-(\d{4})", line)
                if found:
                    received.setdefault(found.group(1), time.perf_counter())
                    if len(received) == count:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(30)
    time.sleep(0.5)
    committed: dict[str, float] = {}
    for i in range(count):
        ts = START.timestamp() + i
        alert = Alert(
            alert_id=f"sse-{i}", rule="sip_flood", severity="critical", call_id=None, source_ip="192.0.2.1",
            first_ts=ts, last_ts=ts, summary=f"sse-bench-{i:04d}",
        )  # fmt: skip
        writer.write_batch(Batch(alerts=[alert]))
        committed[f"{i:04d}"] = time.perf_counter()
        time.sleep(0.3)
    listener.join(30)
    return sorted((received[k] - t) * 1000 for k, t in committed.items() if k in received)


def measure(url: str, capture: Path, alerts: int, n: int) -> None:
    """Fill the store at ``url`` and print the table (see the module docstring)."""
    analyze_into_store(capture, url)
    engine = open_store(url)
    writer = StoreWriter(engine)
    detail = long_call(engine, writer, 500)
    fill_s = fill_alerts(writer, alerts)
    with engine.connect() as conn:
        total = q.search_alerts(conn, q.AlertFilter(limit=1)).total
        cursor = q.latest_alert_cursor(conn)
    print(
        f"{engine.dialect.name}: a call with {len(detail.messages)} messages; {total} alerts ({fill_s:.1f} s)"
    )
    settings = UiSettings(store_url=url, overview_hours=None)
    rows: list[tuple[str, Timing, Timing | None]] = []

    def query(fn: Callable[..., object], *a: object) -> Callable[[], object]:
        def run() -> object:
            with engine.connect() as conn:
                return fn(conn, *a)

        return run

    with serving(create_app(settings, engine)) as base, httpx.Client(base_url=base, timeout=60) as http:
        page = call_url(detail.call.call_id)
        assert http.get(page).text.count('class="msg ') == 500
        ui = timed(lambda: http.get(page), n)
        rows.append(("call page, 500 messages", ui, timed(query(q.call_detail, detail.call.call_id), n)))
        ladder = timed(lambda: render_ladder(detail.messages, detail.streams), n)
        rows.append(("  its ladder SVG alone", ladder, None))
        cases = [
            ("alerts, page 1", {}, q.AlertFilter()),
            ("alerts, page 1000", {"page": 1000}, q.AlertFilter(offset=999 * 50)),
            ("alerts, rule+severity", {"rule": "low_mos", "severity": "critical"},
             q.AlertFilter(rule="low_mos", severity="critical")),
        ]  # fmt: skip
        for label, params, f in cases:
            assert http.get("/alerts", params=params).status_code == 200
            ui = timed(lambda p=params: http.get("/alerts", params=p), n)  # type: ignore[misc]
            rows.append((f"{label} of {total}", ui, timed(query(q.search_alerts, f), n)))
        latencies = sse_latency(base, writer, cursor, n)
    engine.dispose()
    print(f"\n{'ms':34} {'UI median':>9} {'p95':>7} {'query median':>12} {'p95':>7} {'UI/query':>8}")
    for label, (ui_med, ui_p95), ref in rows:
        tail = f"{ref[0]:12.1f} {ref[1]:7.1f} {ui_med / ref[0]:8.1f}" if ref else ""
        print(f"{label:34} {ui_med:9.1f} {ui_p95:7.1f} {tail}".rstrip())
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"\nSSE, commit -> event ({len(latencies)}/{n} alerts, poll {settings.live_poll_s * 1000:.0f} ms): "
        f"median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--capture", type=Path, default=ROOT / "bench/out/demo.pcap")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args.capture, args.alerts, args.repeat)
        return 0
    server = PostgresServer(durable=True)  # a cluster of its own in a temporary directory (Debian's binaries)
    try:
        measure(server.create_database(), args.capture, args.alerts, args.repeat)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
