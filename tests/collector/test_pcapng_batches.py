"""pcapng through CaptureFile.record_batches() must give exactly what frame iteration gives.

The batch reader (CaptureFile._read_pcapng_batches) walks blocks, takes runs of
same-length EPBs in bulk and computes timestamps with numpy; iteration
(_read_pcapng) decodes block by block in Python. Frames rebuilt from the
batches must match the iterated frames field for field (timestamps bit for
bit), and errors, truncation and bytes_read must match too, on the shared
captures and on crafted files: several interfaces with their own link types,
resolutions and offsets, both byte orders, SPB and PB blocks, options, damage
at every offset, and chunk boundaries anywhere.
"""

from __future__ import annotations

import gzip
import itertools
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from callqual.collector.capture import capture_stream, pcap_file
from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.packet import Frame, RecordBatch
from tests.collector.pcapcraft import ether, ipv4, udp
from tests.shared_captures import PCAPS

_SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
PCAPNG = sorted(p for p in PCAPS.rglob("*") if p.is_file() and p.read_bytes()[:4] == _SHB_MAGIC)

ETHERNET, RAW, SLL = 1, 101, 113


# -- crafting, in either byte order -------------------------------------------------------------


def _block(
    order: str, btype: int, body: bytes, length: int | None = None, trailer: int | None = None
) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return (
        struct.pack(order + "II", btype, n if length is None else length)
        + body
        + struct.pack(order + "I", n if trailer is None else trailer)
    )


def shb(order: str = "<") -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(
    order: str,
    linktype: int,
    *,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    snaplen: int = 0,
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack(order + "HHB3x", 9, 1, tsresol)
    if tsoffset is not None:
        opts += struct.pack(order + "HHq", 14, 8, tsoffset)
    opts += struct.pack(order + "HH", 0, 0)
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(
    order: str, iface: int, ticks: int, data: bytes, *, orig: int | None = None, options: bytes = b""
) -> bytes:
    head = struct.pack(
        order + "IIIII",
        iface,
        ticks >> 32,
        ticks & 0xFFFFFFFF,
        len(data),
        len(data) if orig is None else orig,
    )
    return _block(order, 6, head + data + b"\0" * (-len(data) % 4) + options)


def pb(order: str, iface: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack(order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data) + 3)
    return _block(order, 2, head + data)


def spb(order: str, data: bytes, orig: int | None = None) -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(data) if orig is None else orig) + data)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _rtp(i: int, size: int = 160) -> bytes:
    header = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * 160 & 0xFFFFFFFF, 1234)
    return ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(4000, 5000, header + bytes(size))))


# -- the comparison -----------------------------------------------------------------------------


def _frames_from_batches(batches: Iterator[RecordBatch]) -> tuple[list[Frame], list[RecordBatch]]:
    frames: list[Frame] = []
    seen: list[RecordBatch] = []
    for batch in batches:
        n = len(batch)
        assert n > 0
        assert batch.first_number == len(frames) + 1
        for column, dtype in (
            (batch.start, np.int64),
            (batch.caplen, np.int64),
            (batch.orig_len, np.int64),
            (batch.ts, np.float64),
        ):
            assert column.dtype == dtype
            assert column.shape == (n,)
        assert (batch.caplen >= 0).all()
        assert (batch.start + batch.caplen <= len(batch.buf)).all()
        frames.extend(batch.frame(i) for i in range(n))
        seen.append(batch)
    return frames, seen


def _same_frames(got: list[Frame], want: list[Frame]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert (a.number, a.linktype, a.orig_len, a.data) == (b.number, b.linktype, b.orig_len, b.data), (
            a.number
        )
        assert a.ts.hex() == b.ts.hex(), (a.number, a.ts, b.ts)  # bit for bit


def check(path: Path) -> tuple[list[Frame], list[RecordBatch], pcap_file.CaptureFile]:
    """Assert both views agree; return the frames, the batches and the batch reader's file."""
    with open_capture(path) as cap:
        want = list(cap)
    with open_capture(path) as bcap:
        batches = bcap.record_batches()
        assert batches is not None
        got, seen = _frames_from_batches(batches)
    _same_frames(got, want)
    assert (bcap.errors, bcap.truncated, bcap.bytes_read) == (cap.errors, cap.truncated, cap.bytes_read)
    return got, seen, bcap


def write(tmp_path: Path, blob: bytes, name: str = "t.pcapng") -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


@pytest.fixture(params=[None, 64, 1000, 4096], ids=["8MiB", "64B", "1000B", "4KiB"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int | None:
    """Read size of the batch reader: small ones put chunk boundaries inside blocks and runs."""
    size: int | None = request.param
    if size is not None:
        monkeypatch.setattr(capture_stream, "BATCH_CHUNK", size)
    return size


# -- real captures -------------------------------------------------------------------------------


def test_there_are_shared_pcapng_captures() -> None:
    assert len(PCAPNG) >= 3


@pytest.mark.parametrize("path", PCAPNG, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shared_pcapng_captures(path: Path, chunk: int | None) -> None:
    frames, _batches, cap = check(path)
    assert frames
    assert not cap.errors and not cap.truncated
    assert cap.bytes_read == cap.size


def test_gzip_compressed_pcapng(tmp_path: Path) -> None:
    src = PCAPNG[0]
    path = write(tmp_path, gzip.compress(src.read_bytes()), "c.pcapng.gz")
    frames, _batches, cap = check(path)
    assert frames and cap.bytes_read == cap.size


# -- crafted files -------------------------------------------------------------------------------


def _mixed(order: str) -> bytes:
    """Four interfaces: Ethernet in us and in ns with an offset, SLL in 2^-10 s, Ethernet again in 10 ms.

    Long runs of one EPB length (taken in bulk) on one interface, on two interfaces of the same link
    type alternating, and link types alternating every packet; an unknown block type and SPBs between.
    """
    blob = (
        shb(order)
        + idb(order, ETHERNET)
        + idb(order, ETHERNET, tsresol=9, tsoffset=1_600_000_000)
        + idb(order, SLL, tsresol=0x80 | 10, snaplen=100)
        + idb(order, ETHERNET, tsresol=2, tsoffset=-5)
    )
    t = 1_700_000_000_000_000
    for i in range(700):
        blob += epb(order, 0, t + 20_000 * i, _rtp(i))
    for i in range(600):
        iface = (0, 1, 3)[i % 3]
        ticks = (t + 20_000 * i, 123_456_789 * i + 987_654_321, 17 * i)[i % 3]
        blob += epb(order, iface, ticks, _rtp(i))
    blob += _block(order, 0xBAD, b"unknown block type")
    blob += spb(order, _rtp(1))
    for i in range(300):
        blob += epb(order, (0, 2)[i % 2], (t + i, 1024 * i + 3)[i % 2], _rtp(i))
    blob += spb(order, _rtp(2)) + spb(order, _rtp(3, 40))
    for i in range(50):
        blob += epb(order, 2, 1 << 40 | i, _rtp(i, 10 + i % 3))
    return blob


@pytest.mark.parametrize("order", ["<", ">"])
def test_interfaces_with_their_own_link_type_resolution_and_offset(
    tmp_path: Path, order: str, chunk: int | None
) -> None:
    frames, batches, cap = check(write(tmp_path, _mixed(order)))
    assert not cap.errors and not cap.truncated
    assert len(frames) == 700 + 600 + 1 + 300 + 2 + 50
    assert {f.linktype for f in frames} == {ETHERNET, SLL}
    for batch in batches:
        first = batch.frame(0).linktype
        assert all(batch.frame(i).linktype == first for i in range(len(batch)))
    if chunk is None:
        # One batch per link-type change: the reader cuts there, and only there.
        changes = sum(a.linktype != b.linktype for a, b in itertools.pairwise(frames))
        assert len(batches) == changes + 1
    # the values themselves, not only agreement
    assert frames[0].ts == pytest.approx(1_700_000_000.0)
    assert frames[701].ts == pytest.approx(1_600_000_001.11111111, abs=1e-6)
    assert frames[702].ts == pytest.approx(-4.66)
    spb_frame = frames[1300]
    assert spb_frame.ts == frames[1299].ts  # an SPB reuses the previous timestamp
    assert spb_frame.linktype == ETHERNET  # and interface 0


def test_a_section_per_byte_order(tmp_path: Path, chunk: int | None) -> None:
    """Sections switch byte order and start new interface tables; an SPB reuses a time across them."""
    blob = _mixed("<") + shb(">") + spb(">", b"x" * 20)  # no interface yet in this section
    blob += idb(">", SLL, snaplen=30) + spb(">", _rtp(9))  # cut to the snaplen
    blob += _mixed(">") + _mixed("<")
    frames, _batches, cap = check(write(tmp_path, blob))
    assert cap.errors == {"pcapng.unknown_interface": 1}
    spb_frame = frames[1653]
    assert spb_frame.linktype == SLL
    assert len(spb_frame.data) == 30
    assert spb_frame.ts == frames[1652].ts  # the last EPB of the previous section


def test_packet_blocks_simple_packet_blocks_and_options(tmp_path: Path, chunk: int | None) -> None:
    order = "<"
    comment = (
        _option(order, 1, b"a comment") + _option(order, 2, struct.pack("<I", 1)) + _option(order, 0, b"")
    )
    blob = shb(order) + spb(order, b"before any timestamp" * 2)  # unknown interface: no IDB yet
    blob += idb(order, ETHERNET, snaplen=60) + spb(order, _rtp(0))  # ts 0.0, cut to 60 bytes
    blob += spb(order, _rtp(0)[:50], orig=10)  # orig_len below the data: cut to it
    blob += _block(order, 3, b"")  # an SPB too short for its length field
    blob += _block(order, 3, b"\x05\x00")  # a 2-byte length field
    for i in range(40):
        blob += epb(order, 0, 1_000_000 * i, _rtp(i), options=comment if i % 7 == 3 else b"")
    for i in range(10):
        blob += pb(order, 0, 5_000_000 + i, _rtp(i))
    blob += spb(order, _rtp(1))
    for i in range(40):  # options in every block of a run
        blob += epb(order, 0, 9_000_000 + i, _rtp(i), options=comment)
    blob += spb(order, _rtp(1))
    blob += idb(order, RAW)
    blob += pb(order, 1, 1, b"raw") + epb(order, 1, 2, b"raw ip") + pb(order, 0, 3, _rtp(3))
    frames, _batches, cap = check(write(tmp_path, blob))
    assert cap.errors == {"pcapng.unknown_interface": 1}
    assert frames[0].ts == 0.0 and len(frames[0].data) == 60
    assert len(frames[1].data) == 10
    assert frames[2].data == b"" and frames[3].data == b""
    assert frames[54].ts == frames[53].ts == pytest.approx(5.000009)  # SPB after a PB
    assert frames[95].ts == frames[94].ts == pytest.approx(9.000039)  # SPB after a bulk run
    assert [f.linktype for f in frames[-3:]] == [RAW, RAW, ETHERNET]


def test_big_timestamps_keep_every_bit(tmp_path: Path) -> None:
    """Tick counts past 2**53 and 2**63 round to double the same way in numpy as in Python."""
    order = "<"
    rng = random.Random(7)
    blob = shb(order)
    resolutions = [None, 9, 0x80 | 30, 0x80 | 0, 3, 15, 0x80 | 63]
    for k, res in enumerate(resolutions):
        blob += idb(order, ETHERNET, tsresol=res, tsoffset=(0, 1_700_000_000, -(2**40), 2**62)[k % 4])
    data = _rtp(0)
    specials = [0, 1, 2**32 - 1, 2**32, 2**53 - 1, 2**53 + 1, 2**53 + 3, 2**63 - 1, 2**63 + 1, 2**64 - 1]
    for _ in range(3):
        for iface in range(len(resolutions)):
            for ticks in specials + [rng.getrandbits(64) for _ in range(60)] + [rng.getrandbits(61)]:
                blob += epb(order, iface, ticks, data)
    frames, batches, cap = check(write(tmp_path, blob))
    assert not cap.errors and len(frames) == 3 * len(resolutions) * 71
    assert len(batches) == 1


def test_damaged_blocks_are_counted_like_iteration(tmp_path: Path, chunk: int | None) -> None:
    """Damage inside bulk runs: each error ends the run at the damaged block, counted once."""
    order = "<"
    blob = shb(order) + idb(order, ETHERNET) + _block(order, 1, b"shor")  # too short: interface 1 unusable
    for i in range(60):
        blob += epb(order, 0, i, _rtp(i))
    blob += epb(order, 5, 1, _rtp(0))  # unknown interface, same length as the run
    for i in range(60):
        blob += epb(order, 0, 100 + i, _rtp(i))
    bad_caplen = bytearray(epb(order, 0, 1, _rtp(0)))
    bad_caplen[20:24] = struct.pack(order + "I", len(bad_caplen))  # caplen beyond the block
    blob += bytes(bad_caplen)
    for i in range(60):
        blob += epb(order, 0, 200 + i, _rtp(i))
    blob += _block(order, 6, b"\0" * 16)  # an EPB too short for its header
    blob += _block(order, 2, b"\0" * 12)  # a PB too short for its header
    blob += epb(order, 1, 5, _rtp(0))  # on the damaged interface: a frame of link type -1
    blob += pb(order, 9, 5, _rtp(0))  # unknown interface
    bad_pb = bytearray(pb(order, 0, 5, b"xyz"))
    bad_pb[20:24] = struct.pack(order + "I", 999)
    blob += bytes(bad_pb)
    for i in range(60):
        blob += epb(order, 0, 300 + i, _rtp(i))
    blob += _block(order, 6, epb(order, 0, 0, _rtp(0))[8:-4], trailer=12)  # lengths disagree: stop
    blob += epb(order, 0, 1, _rtp(0))
    frames, _batches, cap = check(write(tmp_path, blob))
    assert cap.errors == {
        "pcapng.bad_interface_block": 1,
        "pcapng.unknown_interface": 2,
        "pcapng.bad_caplen": 2,
        "pcapng.bad_packet_block": 2,
        "pcapng.bad_block_length": 1,
    }
    assert len(frames) == 241
    assert frames[180].linktype == -1


@pytest.mark.parametrize(
    "tail",
    [
        _block("<", 6, b"\0" * 20, length=30),  # not a multiple of 4
        _block("<", 6, b"\0" * 20, length=8),  # shorter than a block header
        _block("<", 6, b"\0" * 20, length=1 << 27),  # absurd
        _block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x11223344, 1, 0, -1)),  # bad byte-order magic
    ],
    ids=["unaligned", "short", "absurd", "bad-section"],
)
def test_framing_errors_stop_reading(tmp_path: Path, tail: bytes, chunk: int | None) -> None:
    head = shb() + idb("<", ETHERNET) + b"".join(epb("<", 0, i, _rtp(i)) for i in range(30))
    frames, _batches, cap = check(write(tmp_path, head + tail + epb("<", 0, 99, _rtp(0))))
    assert len(frames) == 30
    assert sum(cap.errors.values()) == 1


def test_truncated_at_every_offset(tmp_path: Path) -> None:
    order = ">"
    blob = shb(order) + idb(order, ETHERNET, tsresol=9) + idb(order, SLL)
    for i in range(12):
        blob += epb(order, i // 6, i, _rtp(i, 40))
    blob += spb(order, b"simple") + pb(order, 1, 7, b"packet") + shb("<") + idb("<", RAW)
    blob += b"".join(epb("<", 0, i, b"0123456789ab") for i in range(8))
    path = tmp_path / "cut.pcapng"
    truncated = 0
    for n in range(12, len(blob) + 1):
        path.write_bytes(blob[:n])
        _frames, _batches, cap = check(path)
        truncated += cap.truncated
    assert truncated > len(blob) - 12 - 30  # all but the prefixes that end on a block boundary


def test_random_files_and_random_damage(tmp_path: Path) -> None:
    """Random block sequences (with runs), then random bytes overwritten: still the same frames."""
    rng = random.Random(2024)
    path = tmp_path / "r.pcapng"
    for trial in range(150):
        order = rng.choice("<>")
        blob = bytearray(shb(order))
        n_if = 0
        for _ in range(rng.randrange(1, 40)):
            kind = rng.random()
            if kind < 0.1 or n_if == 0:
                blob += idb(
                    order,
                    rng.choice([ETHERNET, RAW, SLL]),
                    tsresol=rng.choice([None, 9, 0x80 | 20]),
                    tsoffset=rng.choice([None, 0, 1_500_000_000, -3]),
                    snaplen=rng.choice([0, 0, 50, 2000]),
                )
                n_if += 1
            elif kind < 0.15:
                order = rng.choice("<>")
                blob += shb(order)
                n_if = 0
            elif kind < 0.2:
                blob += spb(order, _rtp(0, rng.randrange(0, 50)))
            elif kind < 0.25:
                blob += pb(order, rng.randrange(n_if + 1), rng.getrandbits(64), _rtp(0, rng.randrange(50)))
            else:
                size = rng.choice([0, 1, 2, 3, 160, 160])
                iface = rng.randrange(n_if) if rng.random() < 0.95 else n_if
                for i in range(rng.choice([1, 5, 50, 300])):
                    blob += epb(order, iface, rng.getrandbits(rng.choice([40, 64])), _rtp(i, size))
        for _ in range(rng.choice([0, 0, 1, 3])):
            at = rng.randrange(28, len(blob))
            blob[at] = rng.randrange(256)
        if trial % 3 == 0:
            del blob[rng.randrange(28, len(blob)) :]
        path.write_bytes(bytes(blob))
        check(path)


def test_bytes_read_grows_as_batches_come(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_stream, "BATCH_CHUNK", 1 << 18)
    # 10 MB: more than the first read (the header check's, 4 MiB), then 256 KiB at a time
    blob = shb() + idb("<", ETHERNET) + epb("<", 0, 1, _rtp(1)) * 40_000
    path = write(tmp_path, blob)
    with open_capture(path) as cap:
        batches = cap.record_batches()
        assert batches is not None
        progress = [cap.bytes_read for _ in batches]
    assert len(progress) > 10
    assert progress == sorted(progress) and progress[0] < cap.size // 2
    assert cap.bytes_read == cap.size


def test_no_batches_once_iteration_started(tmp_path: Path) -> None:
    blob = shb() + idb("<", ETHERNET) + b"".join(epb("<", 0, i, _rtp(i)) for i in range(10))
    with open_capture(write(tmp_path, blob)) as cap:
        next(cap)
        assert cap.record_batches() is None
