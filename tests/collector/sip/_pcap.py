"""Read UDP payloads from the shared captures, numbered like Wireshark frames.

Test-only helper: the collector's own decoder is not used here so that the
SIP parser is checked against the raw capture, independently.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import dpkt

from tests.shared_captures import PCAPS  # noqa: F401 - re-exported for the tests that import it from here

_DLT_RAW = (12, 14, 101)
_DLT_LINUX_SLL = 113


def _ip_layer(linktype: int, buf: bytes) -> object:
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if linktype == _DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if linktype in _DLT_RAW:
        return dpkt.ip.IP(buf) if buf[:1] and buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    return None


def udp_payloads(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (frame number, UDP payload) for unfragmented UDP datagrams, IP-in-IP unwrapped."""
    with path.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        for frame, (_ts, buf) in enumerate(reader, start=1):
            try:
                ip = _ip_layer(linktype, buf)
            except (dpkt.UnpackError, IndexError, ValueError):
                continue
            while isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.ip.IP):
                ip = ip.data
            if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
                continue
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            udp = ip.data
            if isinstance(udp, dpkt.udp.UDP):
                yield frame, bytes(udp.data)


def tshark_sip_fields(path: Path) -> dict[int, tuple[str, str, str, str]]:
    """Frame -> (Call-ID, CSeq, Status-Code, Method) as tshark decodes them."""
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "sip",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "sip.Call-ID",
            "-e",
            "sip.CSeq",
            "-e",
            "sip.Status-Code",
            "-e",
            "sip.Method",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    result: dict[int, tuple[str, str, str, str]] = {}
    for line in out.splitlines():
        frame, call_id, cseq, status, method = line.split("\t")
        result[int(frame)] = (call_id, cseq, status, method)
    return result
