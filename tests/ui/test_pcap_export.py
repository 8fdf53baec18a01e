"""The call's pcap export, read back by tshark: the same SIP messages, addresses, ports, times."""

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from callqual.ui.pcap_export import export_pcap
from tests.shared_captures import PCAPS
from tests.ui.captured_calls import captured_call

_FIELDS = [
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "ip.dst",
    "ipv6.dst",
    "udp.srcport",
    "tcp.srcport",
    "udp.dstport",
    "tcp.dstport",
    "sctp.srcport",
    "sctp.dstport",
    "sip.Request-Line",
    "sip.Status-Line",
    "sip.Call-ID",
    "sip.CSeq",
]


def _sip_rows(path: Path, frames: set[int] | None = None) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-Y", "sip", "-T", "fields", "-E", "separator=|"]
    for f in ["frame.number", *_FIELDS]:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    return [r[1:] for r in rows if frames is None or int(r[0]) in frames]


def _microseconds(rows: list[list[str]]) -> list[list[str]]:
    return [[f"{float(r[0]):.6f}", *r[1:]] for r in rows]


@pytest.mark.tshark
@pytest.mark.parametrize(
    "capture",
    [
        "rtp-pcap/sip-rtp-g722.pcap",
        "heplify/sip_ipv6_udp.pcap",
        "heplify/sip_ipv4_tcp.pcap",
        "heplify/sip_sctp.pcap",
        "heplify/sip_tcp_websocket.pcap",
    ],
)
def test_tshark_reads_back_the_same_messages(capture: str, tmp_path: Path) -> None:
    messages, _ = captured_call(capture)
    exported = tmp_path / "call.pcap"
    exported.write_bytes(export_pcap(messages))
    original = _sip_rows(PCAPS / capture, {m.frame for m in messages})
    assert len(original) == len(messages) >= 4
    assert _microseconds(_sip_rows(exported)) == _microseconds(original)


@pytest.mark.tshark
def test_checksums_are_valid(tmp_path: Path) -> None:
    messages, _ = captured_call("heplify/sip_ipv4_tcp.pcap")
    exported = tmp_path / "call.pcap"
    exported.write_bytes(export_pcap(messages))
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(exported),
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "tcp.checksum.status == 0 || ip.checksum.status == 0 || tcp.analysis.flags",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == ""


@pytest.mark.tshark
def test_a_message_longer_than_a_segment_is_split_and_reassembled(tmp_path: Path) -> None:
    messages, _ = captured_call("heplify/sip_ipv4_tcp.pcap")
    first = messages[0]
    head, _, body = first.raw.partition(b"\r\n\r\n")
    big_body = body + b"a=x-filler:" + b"z" * 70_000 + b"\r\n"
    head = head.replace(f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(big_body)}".encode())
    assert f"Content-Length: {len(big_body)}".encode() in head
    big = replace(first, raw=head + b"\r\n\r\n" + big_body)
    exported = tmp_path / "big.pcap"
    exported.write_bytes(export_pcap([big]))
    rows = _sip_rows(exported)
    assert len(rows) == 1
    assert rows[0][11].startswith("INVITE ")


def test_sctp_is_exported_as_sctp_and_read_back_by_the_collector(tmp_path: Path) -> None:
    """SIP over SCTP (RFC 4168) goes out as SCTP DATA chunks, not UDP: our own decoder reads the same call."""
    from callqual.pipeline.embedded import analyze_file

    messages, _ = captured_call("heplify/sip_sctp.pcap")
    exported = tmp_path / "call.pcap"
    exported.write_bytes(export_pcap(messages))
    original = analyze_file(PCAPS / "heplify/sip_sctp.pcap")
    again = analyze_file(exported)
    assert again.summary.sip_messages == original.summary.sip_messages == len(messages)
    keep = ("call_id", "state", "final_status", "messages", "requests", "responses", "category")
    assert [c.model_dump(include=set(keep)) for c in again.calls] == [
        c.model_dump(include=set(keep)) for c in original.calls
    ]


def test_an_sctp_message_longer_than_a_chunk_is_fragmented(tmp_path: Path) -> None:
    from callqual.pipeline.embedded import analyze_file

    messages, _ = captured_call("heplify/sip_sctp.pcap")
    first = messages[0]
    head, _, body = first.raw.partition(b"\r\n\r\n")
    big_body = body + b"X" * 70_000
    head = head.replace(f"Content-Length:{len(body)}".encode(), f"Content-Length:{len(big_body)}".encode())
    assert f"Content-Length:{len(big_body)}".encode() in head
    exported = tmp_path / "big.pcap"
    exported.write_bytes(export_pcap([replace(first, raw=head + b"\r\n\r\n" + big_body)]))
    report = analyze_file(exported)
    assert report.summary.frames == 2 and report.summary.sip_messages == 1
    assert not report.summary.errors


def test_websocket_is_exported_as_websocket_and_read_back_by_the_collector(tmp_path: Path) -> None:
    """SIP over WebSocket (RFC 7118): an upgrade, then text frames (masked from the client): read back."""
    from callqual.pipeline.embedded import analyze_file

    messages, _ = captured_call("heplify/sip_tcp_websocket.pcap")
    assert {m.transport for m in messages} == {"udp", "ws"}
    exported = tmp_path / "call.pcap"
    exported.write_bytes(export_pcap(messages))
    original = analyze_file(PCAPS / "heplify/sip_tcp_websocket.pcap")
    again = analyze_file(exported)
    assert again.summary.sip_messages == original.summary.sip_messages == len(messages)
    keep = {"call_id", "state", "final_status", "messages", "requests", "responses", "category"}
    calls = [[c.model_dump(include=keep) for c in report.calls] for report in (again, original)]
    assert calls[0] == calls[1]
    assert not again.summary.errors
