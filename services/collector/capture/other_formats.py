"""Names the capture formats we do not read, from their magic bytes, and says how to convert them.

Users get files from Windows tools, Solaris boxes and old analysers; "not a
capture" sends them guessing, while "a NetMon 2.x file: editcap -F pcap ..."
is one command away from working. Only formats with a fixed magic at offset 0
are listed (the magics are those Wireshark's libwiretap checks); formats without
one (ERF, CommView), or whose packets pcap cannot hold (HP-UX nettl), stay
"unknown format" rather than get a hint that does not work.
"""

from __future__ import annotations

import shlex
from pathlib import PurePath
from typing import NamedTuple

__all__ = ["MAGIC_BYTES_NEEDED", "OtherFormat", "describe_other_format"]


class OtherFormat(NamedTuple):
    magic: bytes
    name: str
    #: True: Wireshark reads it, convert with editcap; False: a compressed archive, unpack it first
    convertible: bool = True


OTHER_FORMATS: tuple[OtherFormat, ...] = (
    OtherFormat(b"GMBU", "Microsoft Network Monitor 2.x capture"),
    OtherFormat(b"RTSS", "Microsoft Network Monitor 1.x capture"),
    OtherFormat(b"snoop\0\0\0", "Sun snoop capture (RFC 1761)"),
    OtherFormat(b"TRSNIFF data    \x1a", "Network General Sniffer (DOS) capture"),
    OtherFormat(b"XCP\0", "NetXray / Sniffer (Windows) capture"),
    OtherFormat(b"ObserverPktBuffe", "Viavi (Network Instruments) Observer capture"),
    OtherFormat(b"\x05VNF", "Visual Networks traffic capture"),
    OtherFormat(b"\xaa\xaa\xaa\xaa", "InfoVista 5View capture"),
    OtherFormat(b"btsnoop\0", "Symbian btsnoop (Bluetooth HCI) capture"),
    OtherFormat(b"PK\x03\x04", "zip archive", convertible=False),
    OtherFormat(b"BZh", "bzip2-compressed file", convertible=False),
    OtherFormat(b"\xfd7zXZ\0", "xz-compressed file", convertible=False),
    OtherFormat(b"\x28\xb5\x2f\xfd", "zstd-compressed file", convertible=False),
)

#: How many leading bytes ``describe_other_format`` needs to see.
MAGIC_BYTES_NEEDED = max(len(f.magic) for f in OTHER_FORMATS)


def describe_other_format(head: bytes, path: str) -> str | None:
    """What the file starting with ``head`` is and what to do with it; None if it is none of these."""
    for fmt in OTHER_FORMATS:
        if head.startswith(fmt.magic):
            if not fmt.convertible:
                return f"a {fmt.name}: unpack it first (callqual reads pcap, pcapng and gzip)"
            source = PurePath(path)
            target = source.stem + ("-converted.pcap" if source.suffix == ".pcap" else ".pcap")
            return f"a {fmt.name}; convert it with: editcap -F pcap {shlex.quote(path)} {shlex.quote(target)}"
    return None
