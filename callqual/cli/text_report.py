"""The human report of ``callqual analyze``: summary, then problem calls first.

An operator reads this in a terminal during an incident, so the order is by
what needs attention: alerts, calls with problems, then the rest.
"""

from datetime import UTC, datetime

from callqual.schemas import AnalysisReport, CallRecord, StreamRecord

_CATEGORY_RANK = {
    "suspicious": 0,
    "failed_auth": 1,
    "failed_network": 2,
    "no_media": 3,
    "one_way": 4,
    "poor_quality": 5,
    "failed_user": 6,
    "ok": 7,
}


def _ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except (OverflowError, OSError, ValueError):  # past year 9999: a pcapng clock can say so
        return f"{ts:.6g} s since 1970"


def _num(value: float | int | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _cut(text: str | None, width: int) -> str:
    text = text or "-"
    return text if len(text) <= width else text[: width - 1] + "~"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return out


def _call_row(c: CallRecord) -> list[str]:
    return [
        _cut(c.call_id, 28),
        _cut(c.from_uri, 28),
        _cut(c.to_uri, 28),
        c.state,
        _num(c.final_status, "{}"),
        _num(c.post_dial_delay_ms, "{:.0f}"),
        _num(c.setup_time_ms, "{:.0f}"),
        _num(c.duration_s),
        _num(c.mos, "{:.2f}"),
        c.category,
        ",".join(c.problems) or "-",
    ]


def _stream_row(s: StreamRecord) -> list[str]:
    loss = 100.0 * s.lost / s.expected if s.expected > 0 else 0.0
    return [
        f"{s.src_ip}:{s.src_port}",
        f"{s.dst_ip}:{s.dst_port}",
        f"0x{s.ssrc:08X}",
        _cut(s.codec or str(s.payload_type), 12),
        str(s.packets),
        f"{s.lost} ({loss:.1f}%)",
        f"{s.max_delta_ms:.1f}",
        f"{s.mean_jitter_ms:.2f}",
        f"{s.max_jitter_ms:.2f}",
        _num(s.mos, "{:.2f}"),
        _cut(s.call_id, 24),
    ]


def render(report: AnalysisReport) -> str:
    s = report.summary
    lines = [
        f"Capture   {s.source}",
        f"Frames    {s.frames} ({s.bytes} bytes), {_ts(s.first_ts)} .. {_ts(s.last_ts)} UTC"
        + ("  [TRUNCATED FILE]" if s.truncated else ""),
        f"SIP       {s.sip_messages} messages, {s.calls} calls, {s.streams} RTP streams, {s.alerts} alerts",
    ]
    if s.calls_by_category:
        lines.append("Calls     " + ", ".join(f"{k}={v}" for k, v in s.calls_by_category.items()))
    for title, counts in (("Errors", s.errors), ("Dropped", s.dropped), ("Skipped", s.skipped)):
        if counts:
            lines.append(f"{title:<9} " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    if report.alerts:
        lines += ["", f"ALERTS ({len(report.alerts)})"]
        for a in report.alerts:
            lines.append(f"  [{a.severity:<8}] {a.rule:<22} {_ts(a.first_ts)}  {a.summary}")
            for ev in a.evidence[:3]:
                lines.append(f"      frame {ev.frame}: {ev.src} -> {ev.dst}  {_cut(ev.first_line, 70)}")
    calls = sorted(report.calls, key=lambda c: (_CATEGORY_RANK.get(c.category, 9), c.start_ts))
    if calls:
        lines += ["", f"CALLS ({len(calls)}, problems first)"]
        headers = [
            "call-id",
            "from",
            "to",
            "state",
            "status",
            "pdd ms",
            "setup ms",
            "dur s",
            "mos",
            "category",
            "problems",
        ]
        lines += ["  " + row for row in _table(headers, [_call_row(c) for c in calls])]
    streams = sorted(report.streams, key=lambda x: (x.mos if x.mos is not None else 5.0, x.first_ts))
    if streams:
        lines += ["", f"RTP STREAMS ({len(streams)}, worst first)"]
        headers = [
            "source",
            "destination",
            "ssrc",
            "codec",
            "pkts",
            "lost",
            "max d ms",
            "mean jit",
            "max jit",
            "mos",
            "call-id",
        ]
        lines += ["  " + row for row in _table(headers, [_stream_row(x) for x in streams])]
    return "\n".join(lines) + "\n"
