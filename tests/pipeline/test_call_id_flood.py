"""100,000 distinct Call-IDs (an INVITE flood): bounded memory, counted evictions, no silence."""

import struct
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.call_assembler import AssemblerConfig
from callqual.pipeline.embedded import EmbeddedPipeline

N_CALLS = 100_000
MAX_CALLS = 5_000


def _write_flood(path: Path) -> None:
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(N_CALLS):
        sip = (
            f"INVITE sip:{1000 + i % 9000}@10.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK{i:08x}\r\n"
            f"From: <sip:attacker@198.51.100.7>;tag={i:x}\r\nTo: <sip:{1000 + i % 9000}@10.0.0.1>\r\n"
            f"Call-ID: flood-{i}@198.51.100.7\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            "User-Agent: flood\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        udp = struct.pack("!HHHH", 5060, 5060, 8 + len(sip), 0) + sip
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            i & 0xFFFF,
            0,
            64,
            17,
            0,
            bytes([198, 51, 100, 7]),
            bytes([10, 0, 0, 1]),
        )
        frame = eth + ip + udp
        ts = 1_700_000_000 + i * 0.0001  # 10,000 INVITEs/s: all within the INVITE timeout
        sec = int(ts)
        out.append(struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


@pytest.mark.slow
def test_call_table_stays_bounded_and_every_call_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    _write_flood(path)
    pipeline = EmbeddedPipeline(assembler_config=AssemblerConfig(max_calls=MAX_CALLS))
    largest = 0
    with open_capture(path) as capture:
        for frame in capture:
            pipeline.collector.feed(frame)
            largest = max(largest, len(pipeline.detector.assembler))
    # Bounded: the open-call table never outgrows its limit, whatever the input.
    assert largest == MAX_CALLS
    pipeline.finish()
    report = pipeline.report(str(path))
    assert report.summary.sip_messages == N_CALLS
    # Nothing is dropped silently: evicted calls are still reported, and counted.
    assert len(report.calls) == N_CALLS
    assert report.summary.dropped["calls.evicted"] == N_CALLS - MAX_CALLS
    assert {c.closed_by for c in report.calls} == {"evicted", "end_of_input"}
    # The flood itself is what an operator must hear about.
    assert "sip_flood" in {a.rule for a in report.alerts}
