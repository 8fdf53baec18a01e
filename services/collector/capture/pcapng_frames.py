"""pcapng, one :class:`Frame` per packet block: the reader for consumers that want packets.

Blocks are walked one by one; Enhanced, obsolete and Simple Packet Blocks give
frames, Interface Description Blocks fill the section's interface table (link
type and timestamp resolution per interface), a Section Header Block starts a
new table and may switch byte order, and every other block is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from callqual.collector.capture.capture_stream import MAX_RECORD, CaptureStream
from callqual.collector.capture.pcapng_blocks import (
    BT_EPB,
    BT_IDB,
    BT_PB,
    BT_SPB,
    SHB_MAGIC,
    UNUSABLE_INTERFACE,
    Interface,
    epb_seconds,
    interface_block,
    section_byte_order,
    spb_caplen,
)
from callqual.collector.packet import Frame

__all__ = ["read_pcapng_frames"]


def read_pcapng_frames(src: CaptureStream) -> Iterator[Frame]:
    """The blocks from ``src.pos`` on, one :class:`Frame` per packet block."""
    order = "<"
    # Per-section interface table: (linktype, seconds per tick, ts offset, snaplen)
    ifaces: list[Interface] = []
    number = 0
    last_ts = 0.0
    u32 = struct.Struct("<I")
    while True:
        if not src.more(12):
            return
        buf, pos = src.buf, src.pos
        if buf[pos : pos + 4] == SHB_MAGIC:
            # A new section may switch byte order; the block length must be read in it.
            section_order = section_byte_order(buf, pos)
            if section_order is None:
                src.errors["pcapng.bad_section_header"] += 1
                return
            order = section_order
            u32 = struct.Struct(order + "I")
            ifaces = []
        btype, blen = struct.unpack_from(order + "II", buf, pos)
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            src.errors["pcapng.bad_block_length"] += 1
            return
        if not src.more(blen):
            return
        buf, pos = src.buf, src.pos
        if u32.unpack_from(buf, pos + blen - 4)[0] != blen:
            src.errors["pcapng.bad_block_length"] += 1
            return
        src.pos = pos + blen
        body = pos + 8
        body_end = pos + blen - 4
        if btype in (BT_EPB, BT_PB):
            if body_end - body < 20:
                src.errors["pcapng.bad_packet_block"] += 1
                continue
            if btype == BT_EPB:
                ifid, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(order + "IIIII", buf, body)
            else:
                ifid, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(order + "HHIIII", buf, body)
            if ifid >= len(ifaces):
                src.errors["pcapng.unknown_interface"] += 1
                continue
            start = body + 20
            if start + caplen > body_end:
                src.errors["pcapng.bad_caplen"] += 1
                continue
            linktype, tick, offset, _snap = ifaces[ifid]
            last_ts = epb_seconds((ts_hi << 32) | ts_lo, tick, offset)
            number += 1
            yield Frame(number, last_ts, linktype, buf[start : start + caplen], origlen)
        elif btype == BT_SPB:
            if not ifaces:
                src.errors["pcapng.unknown_interface"] += 1
                continue
            (origlen,) = u32.unpack_from(buf, body)
            linktype, _tick, _offset, snap = ifaces[0]
            caplen = spb_caplen(origlen, blen, snap)
            number += 1
            # An SPB carries no timestamp; reusing the previous one keeps
            # capture-time timeouts downstream monotonic.
            yield Frame(number, last_ts, linktype, buf[body + 4 : body + 4 + caplen], origlen)
        elif btype == BT_IDB:
            iface = interface_block(order, buf, pos, blen)
            if iface is None:
                src.errors["pcapng.bad_interface_block"] += 1
                iface = UNUSABLE_INTERFACE
            ifaces.append(iface)
        # Section headers were handled above; every other block type is skipped.
