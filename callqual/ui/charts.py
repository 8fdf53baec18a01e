"""Small server-rendered SVG charts: quality over time, calls per minute, the MOS histogram.

No JavaScript charting library: the page stays static under a strict Content-Security-Policy
and the charts print. Every label passes through ``escape``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import escape

from callqual.ui.model import IntervalLike

WIDTH = 640
HEIGHT = 160
PAD_LEFT = 44
PAD_BOTTOM = 22
PAD_TOP = 10


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]


def _svg_open(title: str, width: int, height: int) -> str:
    label = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{label}"><title>{label}</title>'
    )


def _text(x: float, y: float, body: object, cls: str = "axis", anchor: str = "start") -> str:
    """A text element; ``body`` is escaped."""
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(body)}</text>'


def line_chart(title: str, series: Sequence[Series], y_max: float | None = None, unit: str = "") -> str:
    """One line per series over a shared x range; the y axis starts at 0."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    top = y_max if y_max is not None else max([*ys, 1e-9]) * 1.1
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP
    out = [_svg_open(title, WIDTH, HEIGHT)]
    base = HEIGHT - PAD_BOTTOM
    out += [
        _text(4, PAD_TOP + 8, f"{top:.3g}{unit}"),
        _text(4, base, "0"),
        f'<line class="axis" x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - 10}" y2="{base}"/>',
        _text(PAD_LEFT, HEIGHT - 4, "0 s"),
        _text(WIDTH - 10, HEIGHT - 4, f"{span:.1f} s", anchor="end"),
    ]
    for i, s in enumerate(series):
        pts = " ".join(
            f"{PAD_LEFT + (x - x0) / span * plot_w:.1f},{PAD_TOP + plot_h - min(y / top, 1.0) * plot_h:.1f}"
            for x, y in s.points
        )
        label = escape(s.label)
        out.append(
            f'<polyline class="series s{i % 6}" fill="none" points="{pts}"><title>{label}</title></polyline>'
        )
        out.append(_text(WIDTH - 12, PAD_TOP + 12 + 14 * i, s.label, f"legend s{i % 6}", "end"))
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, bars: Sequence[tuple[str, int]]) -> str:
    """Vertical bars with their label under them and their count above."""
    n = max(len(bars), 1)
    peak = max([c for _, c in bars] + [1])
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP - 12
    step = (WIDTH - PAD_LEFT) / n
    out = [_svg_open(title, WIDTH, HEIGHT)]
    for i, (label, count) in enumerate(bars):
        h = count / peak * plot_h
        x = PAD_LEFT + i * step
        y = HEIGHT - PAD_BOTTOM - h
        width = max(step - 2, 1)
        out.append(
            f'<g class="bar"><rect x="{x + 1:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}"/>'
            f"<title>{escape(label)}: {count}</title></g>"
        )
        if n <= 24 or i % max(n // 12, 1) == 0:
            out.append(_text(x + step / 2, HEIGHT - 6, label, anchor="middle"))
        if count and n <= 24:
            out.append(_text(x + step / 2, y - 2, count, anchor="middle"))
    out.append("</svg>")
    return "".join(out)


def minute_label(minute: datetime, days: int) -> str:
    """``HH:MM``, with the date in front when the series spans several days."""
    return minute.strftime("%m-%d %H:%M" if days > 1 else "%H:%M")


def _seconds(ts: datetime, start: datetime) -> float:
    return (ts - start).total_seconds()


def quality_charts(intervals: Sequence[IntervalLike], stream_names: dict[int, str]) -> dict[str, str]:
    """Loss (%), jitter (ms) and MOS per interval, one line per stream: name -> SVG."""
    if not intervals:
        return {}
    start = min(i.ts for i in intervals)
    by_stream: dict[int, list[IntervalLike]] = {}
    for i in intervals:
        by_stream.setdefault(i.stream_id, []).append(i)

    def series(value: str) -> list[Series]:
        out = []
        for sid, rows in by_stream.items():
            pts = [
                (_seconds(r.ts, start), float(getattr(r, value)))
                for r in rows
                if getattr(r, value) is not None
            ]
            if value == "interval_loss_ratio":
                pts = [(x, 100 * y) for x, y in pts]
            out.append(Series(stream_names.get(sid, f"stream {sid}"), pts))
        return out

    return {
        "loss": line_chart("Loss per interval (%)", series("interval_loss_ratio"), unit="%"),
        "jitter": line_chart("Mean jitter (ms)", series("mean_jitter_ms"), unit=" ms"),
        "mos": line_chart("MOS", series("mos"), y_max=5.0),
    }
