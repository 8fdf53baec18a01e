"""The SIP ladder (sngrep's call flow) as server-rendered SVG.

One column per address:port in order of first appearance, one arrow per message labelled
with its method or status, time and delta in the left gutter; SDP and retransmissions are
marked in the label and by CSS class; the call's RTP streams are bars under the messages.
Every piece of packet text goes through :func:`escape`. Arrows are focusable
(``tabindex=0``) and carry ``data-message`` so the page's script and htmx can open the raw
message; the standalone export (``interactive=False``) carries no page attributes.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import escape

from callqual.ui.model import SipMessageLike, StreamLike
from callqual.ui.sip_text import has_sdp

COLUMN_WIDTH = 190
GUTTER = 150
ROW_HEIGHT = 30
HEADER_HEIGHT = 48
STREAM_ROW_HEIGHT = 34
LABEL_MAX = 34
#: Width of one character of the 11px monospace stream labels, in SVG units
STREAM_LABEL_CHARS = 7

_STYLE = """
.col-label{font:12px monospace;fill:#222}
.lifeline{stroke:#bbb;stroke-dasharray:4 3}
.msg line{stroke:#1f5fa8;stroke-width:1.5}
.msg text{font:12px monospace;fill:#1f5fa8}
.msg.response line{stroke:#2b7a2b}.msg.response text{fill:#2b7a2b}
.msg.failure line{stroke:#b22}.msg.failure text{fill:#b22}
.msg.retransmission line{stroke-dasharray:6 4}
.msg:focus,.msg:hover{outline:none}.msg:focus line,.msg:hover line{stroke-width:3}
.msg.selected text{font-weight:bold}
.time{font:11px monospace;fill:#555}
.stream rect{fill:#e6a700;opacity:.8}.stream text{font:11px monospace;fill:#333}
.stream.poor rect{fill:#c33}
"""


@dataclass(frozen=True, slots=True)
class Column:
    address: str
    x: int


def endpoint(ip: str, port: int) -> str:
    """``ip:port``, IPv6 in brackets as in a SIP URI."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def columns(messages: Sequence[SipMessageLike]) -> list[Column]:
    """The ladder's columns: each address:port once, in order of first appearance."""
    seen: dict[str, None] = {}
    for m in messages:
        seen.setdefault(endpoint(m.src_ip, m.src_port))
        seen.setdefault(endpoint(m.dst_ip, m.dst_port))
    return [Column(a, GUTTER + i * COLUMN_WIDTH + COLUMN_WIDTH // 2) for i, a in enumerate(seen)]


def message_label(m: SipMessageLike) -> str:
    """Method, or status and reason, from the first line; SDP and retransmission marked."""
    if m.method:
        label = m.method
    else:
        parts = m.first_line.split(" ", 2)
        label = " ".join(parts[1:]) if len(parts) > 1 else m.first_line
    if len(label) > LABEL_MAX:
        label = label[: LABEL_MAX - 1] + "…"
    if has_sdp(m.raw):
        label += " (SDP)"
    if m.retransmission:
        label += " (retrans)"
    return label


def _classes(m: SipMessageLike) -> str:
    kind = ["msg", "request" if m.method else "response"]
    if m.status_code is not None and m.status_code >= 400:
        kind.append("failure")
    if m.retransmission:
        kind.append("retransmission")
    if has_sdp(m.raw):
        kind.append("sdp")
    return " ".join(kind)


def _clock(ts: datetime) -> str:
    return ts.strftime("%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def _stream_label(s: StreamLike) -> str:
    expected = s.packets + max(s.lost, 0)
    loss = f"{100 * max(s.lost, 0) / expected:.1f}%" if expected else "-"
    mos = f"{s.mos:.2f}" if s.mos is not None else "-"
    return f"RTP {s.codec or '?'} · {s.packets} pkts · loss {loss} · MOS {mos}"


def _stream_text(s: StreamLike) -> str:
    ends = f"({endpoint(s.src_ip, s.src_port)} → {endpoint(s.dst_ip, s.dst_port)})"
    return f"{_stream_label(s)} {ends}"


def _column_for_ip(cols: list[Column], ip: str, fallback: int) -> int:
    for c in cols:
        if c.address.startswith((f"{ip}:", f"[{ip}]:")):
            return c.x
    return fallback


def render_ladder(
    messages: Sequence[SipMessageLike],
    streams: Sequence[StreamLike] = (),
    *,
    message_url: Callable[[SipMessageLike], str] | None = None,
    title: str = "SIP ladder",
) -> str:
    """The whole ladder as one ``<svg>`` element (UTF-8 text).

    ``message_url`` makes each arrow open that URL into the page's raw-message panel
    (htmx) and leaves the styling to the page's stylesheet (its CSP allows no inline
    style); without it the SVG is a standalone picture carrying its own ``<style>``.
    """
    cols = columns(messages)
    by_address = {c.address: c.x for c in cols}
    width = GUTTER + max(len(cols), 2) * COLUMN_WIDTH
    if streams:  # a stream's label starts at its left column and may run past the last one
        right_most = max((c.x for c in cols), default=GUTTER)
        width = max(width, *(right_most + STREAM_LABEL_CHARS * len(_stream_text(s)) for s in streams))
    top = HEADER_HEIGHT
    height = top + len(messages) * ROW_HEIGHT + 20 + len(streams) * STREAM_ROW_HEIGHT + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="group" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>" + ("" if message_url else f"<style>{_STYLE}</style>"),
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9"'
        ' markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>',
    ]
    bottom = height - 10
    for c in cols:
        out.append(
            f'<text class="col-label" x="{c.x}" y="20" text-anchor="middle">{escape(c.address)}</text>'
            f'<line class="lifeline" x1="{c.x}" y1="30" x2="{c.x}" y2="{bottom}"/>'
        )
    previous: datetime | None = None
    for i, m in enumerate(messages):
        y = top + i * ROW_HEIGHT + ROW_HEIGHT // 2
        delta = (m.ts - previous).total_seconds() if previous else 0.0
        previous = m.ts
        x1 = by_address[endpoint(m.src_ip, m.src_port)]
        x2 = by_address[endpoint(m.dst_ip, m.dst_port)]
        label = message_label(m)
        attrs = (
            f' tabindex="0" role="button" data-message="{m.id}" id="msg-{m.id}"'
            f' aria-label="{escape(f"{i + 1}: {label} from {endpoint(m.src_ip, m.src_port)}")}"'
        )
        if message_url is not None:
            attrs += (
                f' hx-get="{escape(message_url(m))}" hx-target="#raw-message" hx-trigger="click, activate"'
            )
        out.append(
            f'<text class="time" x="6" y="{y - 2}">{_clock(m.ts)}</text>'
            f'<text class="time" x="6" y="{y + 10}">+{delta:.3f}s</text>'
        )
        out.append(f'<g class="{_classes(m)}"{attrs}>')
        if x1 == x2:
            out.append(
                f'<path d="M{x1},{y - 6} h30 v12 h-30" fill="none" stroke="currentColor"'
                f' marker-end="url(#arrow)"/><text x="{x1 + 36}" y="{y + 4}">{escape(label)}</text>'
            )
        else:
            mid = (x1 + x2) // 2
            out.append(
                f'<line x1="{x1}" y1="{y + 4}" x2="{x2}" y2="{y + 4}" marker-end="url(#arrow)"/>'
                f'<text x="{mid}" y="{y}" text-anchor="middle">{escape(label)}</text>'
            )
        out.append(f"<title>{escape(m.first_line)}</title></g>")
    y0 = top + len(messages) * ROW_HEIGHT + 20
    for j, s in enumerate(streams):
        y = y0 + j * STREAM_ROW_HEIGHT
        a = _column_for_ip(cols, s.src_ip, GUTTER + 10)
        b = _column_for_ip(cols, s.dst_ip, width - 10)
        left, right = min(a, b), max(a, b)
        if right - left < 40:
            right = left + 40
        poor = " poor" if s.mos is not None and s.mos < 3.6 else ""
        direction = "→" if a <= b else "←"
        out.append(
            f'<g class="stream{poor}" tabindex="0" aria-label="{escape(_stream_label(s))}">'
            f'<rect x="{left}" y="{y}" width="{right - left}" height="10" rx="3"/>'
            f'<text x="{left}" y="{y + 24}">{direction} {escape(_stream_text(s))}</text>'
            "</g>"
        )
    out.append("</svg>")
    return "".join(out)
