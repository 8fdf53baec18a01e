"""pcapng_blocks on its own: the decoding both pcapng readers share (byte order, interfaces, timestamps)."""

from __future__ import annotations

import struct

from callqual.collector.capture.pcapng_blocks import (
    epb_seconds,
    epb_timestamp,
    interface_block,
    section_byte_order,
    spb_caplen,
)
from tests.collector.pcapcraft import pcapng_epb, pcapng_idb, pcapng_shb


def test_section_byte_order_reads_either_order_and_rejects_a_bad_magic() -> None:
    little = pcapng_shb()
    big = little[:8] + struct.pack(">I", 0x1A2B3C4D) + little[12:]
    assert section_byte_order(little, 0) == "<"
    assert section_byte_order(b"pad." + big, 4) == ">"
    assert section_byte_order(little[:8] + b"\0\0\0\0" + little[12:], 0) is None


def test_interface_block_reads_link_type_and_resolution() -> None:
    idb = pcapng_idb(113, tsresol=9)  # nanoseconds
    assert interface_block("<", idb, 0, len(idb)) == (113, 1e-9, 0, 0)
    micro = pcapng_idb(1)
    assert interface_block("<", micro, 0, len(micro)) == (1, 1e-6, 0, 0)
    binary = pcapng_idb(1, tsresol=0x80 | 20)  # 2^-20 s
    assert interface_block("<", binary, 0, len(binary)) == (1, 2.0**-20, 0, 0)


def test_interface_block_too_short_is_none() -> None:
    assert interface_block("<", struct.pack("<III", 1, 16, 16) + b"\0" * 4, 0, 16) is None


def test_interface_block_reads_tsoffset() -> None:
    opts = struct.pack("<HHq", 14, 8, 1_000) + struct.pack("<HH", 0, 0)
    body = struct.pack("<HHI", 1, 0, 96) + opts
    blen = len(body) + 12
    idb = struct.pack("<II", 1, blen) + body + struct.pack("<I", blen)
    assert interface_block("<", idb, 0, blen) == (1, 1e-6, 1_000, 96)


def test_epb_seconds_splits_whole_seconds_as_classic_pcap_does() -> None:
    ticks = 1_700_000_000_123_456
    assert epb_seconds(ticks, 1e-6, 0) == 1_700_000_000 + 123_456 * 1e-6
    assert epb_seconds(ticks, 1e-6, 5) == 1_700_000_005 + 123_456 * 1e-6
    epb = pcapng_epb(0, ticks, b"x" * 10)
    assert epb_timestamp("<", epb, 0, [(1, 1e-6, 0, 0)]) == epb_seconds(ticks, 1e-6, 0)


def test_spb_caplen_is_bounded_by_the_block_and_snaplen() -> None:
    assert spb_caplen(100, 16 + 100, 0) == 100
    assert spb_caplen(100, 16 + 64, 0) == 64  # the block holds less than the packet was
    assert spb_caplen(100, 16 + 100, 60) == 60
    assert spb_caplen(100, 12, 0) == 0  # too short even for its length field
