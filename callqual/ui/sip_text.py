"""Raw SIP bytes as text a person reads: decoded safely, SDP spotted, evidence lines marked.

Pure: no escaping here (templates and the SVG writer escape), only decoding and finding.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_CONTENT_TYPE = re.compile(rb"^(?:content-type|c)\s*:\s*application/sdp", re.IGNORECASE | re.MULTILINE)


def message_text(raw: bytes) -> str:
    """The message as text; bytes that are not UTF-8 appear as ``\\xNN`` rather than vanish."""
    return raw.decode("utf-8", errors="backslashreplace").replace("\r\n", "\n")


def has_sdp(raw: bytes) -> bool:
    """True when the message carries an SDP body (by its Content-Type, compact form too)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return bool(body.strip()) and _CONTENT_TYPE.search(head) is not None


@dataclass(frozen=True, slots=True)
class TextLine:
    number: int
    text: str
    highlighted: bool


def highlighted_lines(raw: bytes, needles: Iterable[str]) -> Sequence[TextLine]:
    """The message's lines, those that hold the first line or a header value of the evidence marked.

    An alert's evidence names the first line and a few header values (``EvidenceMessage``); a
    line is marked when it contains one of them, case-insensitively, so the reader's eye
    lands on the line that proves the alert.
    """
    wanted = [n.lower() for n in needles if n and n.strip()]
    lines = message_text(raw).split("\n")
    return [TextLine(i + 1, line, any(n in line.lower() for n in wanted)) for i, line in enumerate(lines)]
