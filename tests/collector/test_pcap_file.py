"""Capture file reading: the shared captures against tshark, and crafted damaged files."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.errors import CaptureFormatError
from tests.collector.pcapcraft import (
    ether,
    ipv4,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
    pcapng_spb,
    udp,
    write_pcap,
)
from tests.tshark_reference import PCAPS, fields

ALL_CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng"))


def test_there_are_shared_captures() -> None:
    assert len(ALL_CAPTURES) >= 30


@pytest.mark.tshark
@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_every_shared_capture_reads_like_tshark(path: Path) -> None:
    rows = fields(path, "frame", ["frame.number", "frame.time_epoch", "frame.len", "frame.cap_len"])
    with open_capture(path) as cap:
        frames = list(cap)
    assert not cap.truncated
    assert not cap.errors
    assert cap.bytes_read == cap.size == path.stat().st_size
    assert len(frames) == len(rows)
    for fr, (number, epoch, flen, caplen) in zip(frames, rows, strict=True):
        assert fr.number == int(number)
        assert fr.ts == pytest.approx(float(epoch), abs=1e-6)
        assert fr.orig_len == int(flen)
        assert len(fr.data) == int(caplen)


def test_pcapng_linktype_and_resolution_come_from_the_file() -> None:
    path = PCAPS / "heplify/erspan_sip_ipv4_udp.pcapng"
    with open_capture(path) as cap:
        first = next(cap)
    assert cap.format == "pcapng"
    assert first.linktype == 1
    assert first.ts == pytest.approx(1526006114.962510, abs=1e-6)


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"INVITE sip:bob@example.com SIP/2.0\r\n")
    with pytest.raises(CaptureFormatError) as exc:
        open_capture(path)
    assert exc.value.reason == "capture.unknown_format"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureFormatError) as exc:
        open_capture(path)
    assert exc.value.reason == "capture.empty"


def test_header_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(struct.pack("<IHH", 0xA1B2C3D4, 2, 4))
    with pytest.raises(CaptureFormatError) as exc:
        open_capture(path)
    assert exc.value.reason == "capture.truncated_header"


def _udp_frame(payload: bytes) -> bytes:
    return ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, payload)))


def test_truncated_file_stops_cleanly(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", [(1.0 + i, _udp_frame(b"x" * 100)) for i in range(3)])
    whole = path.read_bytes()
    path.write_bytes(whole[:-50])  # the third record loses its tail
    with open_capture(path) as cap:
        frames = list(cap)
    assert [f.number for f in frames] == [1, 2]
    assert cap.truncated
    assert not cap.errors


def test_record_header_cut_short(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", [(1.0, _udp_frame(b"x" * 10))])
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03\x04\x05")
    with open_capture(path) as cap:
        assert len(list(cap)) == 1
    assert cap.truncated


def test_absurd_record_length_stops_with_a_counted_error(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", [(1.0, _udp_frame(b"x" * 10))])
    path.write_bytes(path.read_bytes() + struct.pack("<IIII", 2, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"junk")
    with open_capture(path) as cap:
        assert len(list(cap)) == 1
    assert cap.errors["pcap.bad_caplen"] == 1


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_classic_pcap_variants(tmp_path: Path, order: str, nanos: bool) -> None:
    ts = 1700000000.123456789
    data = _udp_frame(b"hello")
    path = write_pcap(tmp_path / "v.pcap", [(ts, data), (ts + 1, data)], nanos=nanos, order=order)
    with open_capture(path) as cap:
        frames = list(cap)
    assert [f.number for f in frames] == [1, 2]
    assert frames[0].data == data
    assert frames[0].linktype == 1
    assert frames[0].ts == pytest.approx(ts, abs=2e-9 if nanos else 1e-6)
    if nanos:
        # a float keeps ~0.2 us at this epoch; the nanosecond digits must at least survive that far
        assert abs(frames[0].ts - 1700000000.123457) > 1e-7


def test_pcapng_two_interfaces_with_own_linktype_and_tsresol(tmp_path: Path) -> None:
    eth = _udp_frame(b"on ethernet")
    raw = ipv4("10.0.0.3", "10.0.0.4", 17, udp(1, 2, b"on raw ip"))
    blob = (
        pcapng_shb()
        + pcapng_idb(1)  # default resolution: microseconds
        + pcapng_idb(101, tsresol=9)  # nanoseconds
        + pcapng_epb(0, 1_700_000_000_250_000, eth)
        + pcapng_epb(1, 1_700_000_000_500_000_001, raw)
        + b"\x0b\x00\x00\x00\x10\x00\x00\x00ABCD\x10\x00\x00\x00"  # an unknown block type: skipped
        + pcapng_spb(eth)
        # a second section with its own, different, interface table
        + pcapng_shb()
        + pcapng_idb(113, tsresol=0x80 | 10)  # 2^-10 s ticks
        + pcapng_epb(0, 1024 * 5, b"\x00" * 16)
    )
    path = tmp_path / "multi.pcapng"
    path.write_bytes(blob)
    with open_capture(path) as cap:
        frames = list(cap)
    assert not cap.errors and not cap.truncated
    assert [(f.number, f.linktype) for f in frames] == [(1, 1), (2, 101), (3, 1), (4, 113)]
    assert frames[0].ts == pytest.approx(1700000000.25)
    assert frames[1].ts == pytest.approx(1700000000.500000001, abs=1e-6)
    assert frames[2].ts == frames[1].ts  # SPB carries no time
    assert frames[3].ts == pytest.approx(5.0)
    assert frames[1].data == raw
    assert frames[2].data == eth


def test_pcapng_packet_on_unknown_interface_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(pcapng_shb() + pcapng_idb(1) + pcapng_epb(3, 0, b"abc") + pcapng_epb(0, 0, b"abcd"))
    with open_capture(path) as cap:
        frames = list(cap)
    assert len(frames) == 1
    assert cap.errors["pcapng.unknown_interface"] == 1


def test_pcapng_truncated_block(tmp_path: Path) -> None:
    blob = pcapng_shb() + pcapng_idb(1) + pcapng_epb(0, 0, b"a" * 40) + pcapng_epb(0, 0, b"b" * 40)
    path = tmp_path / "cut.pcapng"
    path.write_bytes(blob[:-30])
    with open_capture(path) as cap:
        assert len(list(cap)) == 1
    assert cap.truncated


def test_gzip_compressed_capture(tmp_path: Path) -> None:
    src = PCAPS / "sngrep/ipip.pcap"
    path = tmp_path / "ipip.pcap.gz"
    path.write_bytes(gzip.compress(src.read_bytes()))
    with open_capture(path) as cap:
        assert len(list(cap)) == 4
    assert cap.bytes_read == cap.size


@pytest.mark.slow
def test_a_million_frames_read_in_about_a_second(tmp_path: Path) -> None:
    n = 1_000_000
    pkt = _udp_frame(bytes(172))  # a G.711 20 ms RTP packet's size
    rec = struct.pack("<IIII", 1, 2, len(pkt), len(pkt)) + pkt
    path = tmp_path / "big.pcap"
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for _ in range(10):
            fh.write(rec * (n // 10))
    start = time.perf_counter()
    count = 0
    with open_capture(path) as cap:
        for _ in cap:
            count += 1
    elapsed = time.perf_counter() - start
    assert count == n
    # About 1 s on an idle core; generous so a busy CI machine does not flake.
    assert elapsed < 4.0
