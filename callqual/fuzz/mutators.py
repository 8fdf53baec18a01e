"""Frame mutators: each breaks one captured frame in one way a network, a capture or an attacker does.

A mutator takes a seeded ``random.Random`` and a frame and returns the broken
frame, or ``None`` when it does not apply (no SIP to cut a line of, no RTP
header to aim at). A :class:`Mutation` names frame, mutator and seed, so any
mutated capture is reproduced from its plan alone (what hypothesis shrinks
and what a failing bench run prints).

SIP mutators fix the IP and UDP lengths up after resizing the payload, so the
broken SIP reaches the SIP parser instead of being refused a layer below.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from callqual.collector.packet import Frame
from callqual.fuzz.layers import IPPROTO_UDP, Layers, is_rtcp, locate, looks_like_rtp_or_rtcp

Mutator = Callable[[random.Random, Frame], Frame | None]


class Mutation(NamedTuple):
    """Apply ``mutator`` to the frame at ``position`` (modulo the capture's length), ``Random(seed)``."""

    position: int
    mutator: str
    seed: int


def _with_data(frame: Frame, data: bytes | bytearray, ts: float | None = None) -> Frame:
    data = bytes(data)
    orig_len = max(len(data), frame.orig_len + len(data) - len(frame.data))
    return Frame(frame.number, frame.ts if ts is None else ts, frame.linktype, data, orig_len)


# -- anywhere in the frame ------------------------------------------------------


def bit_flip(rng: random.Random, frame: Frame) -> Frame | None:
    if not frame.data:
        return None
    data = bytearray(frame.data)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return _with_data(frame, data)


def random_bytes(rng: random.Random, frame: Frame) -> Frame:
    data = bytearray(frame.data)
    at = rng.randrange(len(data) + 1)
    span = rng.randint(1, 16)
    data[at : at + span] = rng.randbytes(span)
    return _with_data(frame, data)


def truncate(rng: random.Random, frame: Frame) -> Frame | None:
    if not frame.data:
        return None
    cut = frame.data[: rng.randrange(len(frame.data))]
    # Either a snaplen cut (the wire length stays) or a frame that really was that short.
    wire = frame.orig_len if rng.random() < 0.5 else len(cut)
    return Frame(frame.number, frame.ts, frame.linktype, cut, wire)


def time_jump(rng: random.Random, frame: Frame) -> Frame:
    """Capture clocks step (NTP), merged captures interleave, pcapng clocks reach past year 9999."""
    shift = rng.choice((-86_400.0, -3_600.0, -1.0, -1e-6, 1e-6, 30.0, 86_400.0, 1.8e13))
    return _with_data(frame, frame.data, ts=max(0.0, frame.ts + shift))


# -- header length and offset fields ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderField:
    """A length, count or offset field: ``mask`` bits of ``width`` bytes at ``offset`` in its layer."""

    layer: str
    name: str
    offset: int
    width: int
    mask: int


HEADER_FIELDS: tuple[HeaderField, ...] = (
    HeaderField("ip4", "header_length", 0, 1, 0x0F),
    HeaderField("ip4", "total_length", 2, 2, 0xFFFF),
    HeaderField("ip4", "more_fragments", 6, 1, 0x20),
    HeaderField("ip4", "fragment_offset", 6, 2, 0x1FFF),
    HeaderField("ip6", "payload_length", 4, 2, 0xFFFF),
    HeaderField("udp", "length", 4, 2, 0xFFFF),
    HeaderField("tcp", "sequence", 4, 4, 0xFFFFFFFF),
    HeaderField("tcp", "data_offset", 12, 1, 0xF0),
    HeaderField("rtp", "csrc_count", 0, 1, 0x0F),
    HeaderField("rtp", "extension", 0, 1, 0x10),
    HeaderField("rtp", "padding", 0, 1, 0x20),
    HeaderField("rtp", "sequence", 2, 2, 0xFFFF),
    #: the extension header's length when the CSRC count is 0
    HeaderField("rtp", "extension_length", 14, 2, 0xFFFF),
    #: the padding count, the last byte of the datagram
    HeaderField("rtp", "padding_count", -1, 1, 0xFF),
    HeaderField("rtcp", "report_count", 0, 1, 0x1F),
    HeaderField("rtcp", "length", 2, 2, 0xFFFF),
)


def _layer_starts(frame: Frame, layers: Layers) -> dict[str, int]:
    starts = {f"ip{layers.ip_version}": layers.ip}
    if layers.l4 is not None and layers.l4_proto is not None:
        starts["udp" if layers.l4_proto == IPPROTO_UDP else "tcp"] = layers.l4
        at = layers.payload
        if layers.l4_proto == IPPROTO_UDP and at is not None and looks_like_rtp_or_rtcp(frame.data, at):
            starts["rtcp" if is_rtcp(frame.data, at) else "rtp"] = at
    return starts


def header_field(rng: random.Random, frame: Frame) -> Frame | None:
    """One length/offset/count field of IP, UDP, TCP, RTP or RTCP set to 0 or to all ones."""
    layers = locate(frame.linktype, frame.data)
    if layers is None:
        return None
    starts = _layer_starts(frame, layers)
    n = len(frame.data)
    targets = []
    for f in HEADER_FIELDS:
        if f.layer not in starts:
            continue
        at = n + f.offset if f.offset < 0 else starts[f.layer] + f.offset
        if starts[f.layer] <= at and at + f.width <= n:
            targets.append((f, at))
    if not targets:
        return None
    f, at = rng.choice(targets)
    data = bytearray(frame.data)
    word = int.from_bytes(data[at : at + f.width], "big")
    # 0 or all ones, whichever the field is not already (both when it is neither).
    ones = word & f.mask != f.mask and (word & f.mask == 0 or rng.random() < 0.5)
    value = word & ~f.mask | (f.mask if ones else 0)
    data[at : at + f.width] = value.to_bytes(f.width, "big")
    return _with_data(frame, data)


# -- SIP text ----------------------------------------------------------------------------

_SIP_MARK = b"SIP/2.0"
#: Bytes that are not UTF-8 on their own: Latin-1 letters, lone lead/continuation bytes,
#: an encoded surrogate, a code point past U+10FFFF, a NUL.
NON_UTF8 = (
    b"\xfc",
    b'"M\xfcller"',
    b"\xff\xfe",
    b"\xc3",
    b"\x80\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\0",
)
_BAD_CONTENT_LENGTHS = (b"0", b"-1", b"99999999999999999999", b"abc", b"", b" 12 34")


def _sip(frame: Frame) -> tuple[Layers, int] | None:
    layers = locate(frame.linktype, frame.data)
    if layers is None or layers.payload is None:
        return None
    first_line = frame.data[layers.payload : layers.payload + 512].split(b"\n", 1)[0]
    return (layers, layers.payload) if _SIP_MARK in first_line else None


def is_sip(frame: Frame) -> bool:
    """A UDP or TCP payload whose first line names SIP/2.0: a target of the SIP mutators."""
    return _sip(frame) is not None


def _replace_payload(frame: Frame, layers: Layers, at: int, payload: bytes) -> Frame:
    """Splice a new payload in and move the IPv4/IPv6 and UDP lengths by the size difference."""
    delta = len(payload) - (len(frame.data) - at)
    data = bytearray(frame.data[:at] + payload)
    length_at = layers.ip + (2 if layers.ip_version == 4 else 4)
    _add16(data, length_at, delta)
    if layers.l4_proto == IPPROTO_UDP and layers.l4 is not None:
        _add16(data, layers.l4 + 4, delta)
        data[layers.l4 + 6 : layers.l4 + 8] = b"\0\0"  # no checksum
    return _with_data(frame, data)


def _add16(data: bytearray, at: int, delta: int) -> None:
    value = (int.from_bytes(data[at : at + 2], "big") + delta) & 0xFFFF
    data[at : at + 2] = value.to_bytes(2, "big")


def _edit_header_lines(
    rng: random.Random, frame: Frame, edit: Callable[[random.Random, list[bytes]], list[bytes] | None]
) -> Frame | None:
    found = _sip(frame)
    if found is None:
        return None
    layers, at = found
    head, sep, body = frame.data[at:].partition(b"\r\n\r\n")
    lines = edit(rng, head.split(b"\r\n"))
    if lines is None:
        return None
    return _replace_payload(frame, layers, at, b"\r\n".join(lines) + sep + body)


def _cut_line(rng: random.Random, lines: list[bytes]) -> list[bytes] | None:
    i = rng.randrange(len(lines))
    if rng.random() < 0.5:
        del lines[i]
    else:
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return lines


def _duplicate_line(rng: random.Random, lines: list[bytes]) -> list[bytes] | None:
    if len(lines) < 2:
        return None
    i = rng.randrange(1, len(lines))
    lines[i:i] = [lines[i]] * rng.randint(1, 3)
    return lines


def _content_length(rng: random.Random, lines: list[bytes]) -> list[bytes] | None:
    names = (b"content-length", b"l")
    for i, line in enumerate(lines):
        if line.split(b":", 1)[0].strip().lower() in names:
            value = line.split(b":", 1)[1].strip() if b":" in line else b""
            real = int(value) if value.isdigit() else 0
            off_by = (real + rng.randint(1, 5000), max(0, real - rng.randint(1, 50)))
            lines[i] = b"Content-Length: " + rng.choice((*_BAD_CONTENT_LENGTHS, *(b"%d" % n for n in off_by)))
            return lines
    lines.append(b"Content-Length: " + rng.choice(_BAD_CONTENT_LENGTHS))
    return lines


def _non_utf8(rng: random.Random, lines: list[bytes]) -> list[bytes] | None:
    i = rng.randrange(len(lines))
    line = lines[i]
    colon = line.find(b":")
    at = rng.randrange(colon + 1 if colon >= 0 else 0, len(line) + 1)
    lines[i] = line[:at] + rng.choice(NON_UTF8) + line[at:]
    return lines


def sip_cut_line(rng: random.Random, frame: Frame) -> Frame | None:
    """A SIP header line removed, or cut short (a lost TCP segment, a broken middlebox)."""
    return _edit_header_lines(rng, frame, _cut_line)


def sip_duplicate_line(rng: random.Random, frame: Frame) -> Frame | None:
    """A SIP header line repeated: two Call-IDs, two CSeqs, two Content-Lengths."""
    return _edit_header_lines(rng, frame, _duplicate_line)


def sip_content_length(rng: random.Random, frame: Frame) -> Frame | None:
    """Content-Length past the body, short of it, negative, huge or not a number."""
    return _edit_header_lines(rng, frame, _content_length)


def sip_non_utf8(rng: random.Random, frame: Frame) -> Frame | None:
    """Bytes that are not UTF-8 in a SIP line: an ISO-8859-1 display name, a corrupted byte.

    Half the time in a line of the body (the SDP), with Content-Length moved to match,
    so the damage reaches the SDP parser rather than the framing.
    """
    found = _sip(frame)
    if found is None:
        return None
    layers, at = found
    head, sep, body = frame.data[at:].partition(b"\r\n\r\n")
    if not body or rng.random() < 0.5:
        return _edit_header_lines(rng, frame, _non_utf8)
    lines = body.split(b"\n")
    i = rng.randrange(len(lines))
    bad = rng.choice(NON_UTF8)
    cut = lines[i].find(b"=") + 1
    lines[i] = lines[i][:cut] + bad + lines[i][cut:]
    head_lines = [_grow_content_length(line, len(bad)) for line in head.split(b"\r\n")]
    return _replace_payload(frame, layers, at, b"\r\n".join(head_lines) + sep + b"\n".join(lines))


def _grow_content_length(line: bytes, by: int) -> bytes:
    name, colon, value = line.partition(b":")
    if colon and name.strip().lower() in (b"content-length", b"l") and value.strip().isdigit():
        return name + b": " + b"%d" % (int(value) + by)
    return line


def with_header_line(frame: Frame, line: bytes) -> Frame | None:
    """``frame``'s SIP message with ``line`` added after its start line (lengths fixed up)."""
    return _edit_header_lines(random.Random(0), frame, lambda _rng, lines: [lines[0], line, *lines[1:]])


#: Every mutator by name; the SIP ones only apply to frames for which :func:`is_sip` holds.
MUTATORS: dict[str, Mutator] = {
    "bit_flip": bit_flip,
    "random_bytes": random_bytes,
    "truncate": truncate,
    "time_jump": time_jump,
    "header_field": header_field,
    "sip_cut_line": sip_cut_line,
    "sip_duplicate_line": sip_duplicate_line,
    "sip_content_length": sip_content_length,
    "sip_non_utf8": sip_non_utf8,
}
SIP_MUTATORS = frozenset(name for name in MUTATORS if name.startswith("sip_"))


def mutate(frame: Frame, mutator: str, seed: int) -> Frame:
    """``frame`` broken by ``mutator``; random bytes where that mutator does not apply."""
    rng = random.Random(seed)
    out = MUTATORS[mutator](rng, frame)
    return out if out is not None else random_bytes(rng, frame)


def apply_plan(frames: Sequence[Frame], plan: Iterable[Mutation]) -> tuple[list[Frame], int]:
    """A copy of ``frames`` with the plan applied in order; and how many distinct frames it changed."""
    out = list(frames)
    changed: set[int] = set()
    if not out:
        return out, 0
    for m in plan:
        i = m.position % len(out)
        out[i] = mutate(out[i], m.mutator, m.seed)
        changed.add(i)
    return out, len(changed)


def random_plan(rng: random.Random, n_frames: int, sip_frames: Sequence[int], rate: float) -> list[Mutation]:
    """About ``rate`` of the frames mutated once each; SIP mutators aimed at SIP frames."""
    names = sorted(MUTATORS)
    k = max(1, round(n_frames * rate))
    plan = []
    for position in rng.sample(range(n_frames), min(k, n_frames)):
        name = rng.choice(names)
        aim = rng.choice(sip_frames) if name in SIP_MUTATORS and sip_frames else position
        plan.append(Mutation(aim, name, rng.getrandbits(32)))
    return plan
