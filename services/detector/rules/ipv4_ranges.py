"""IPv4 range tests on integers: what ``ipaddress`` answers, without building an address object.

``ipaddress.ip_address`` costs ~10 us and ``is_global`` ~20 more, and the call rules ask about
every signalling and media address of every finished call, most of them seen once, so a memo
does not help (issue 14: a tenth of the detector on signalling-only traffic).
``socket.inet_pton`` accepts exactly the dotted quads ``ipaddress`` accepts (no leading zeros,
four decimal octets); anything else (IPv6, a name, garbage) is None, for the caller's slow path.
``tests/detector/rules/test_ipv4_ranges.py`` holds every answer equal to ``ipaddress``'s.
"""

import ipaddress
import socket
from collections.abc import Iterable

#: (network address, netmask) pairs, as integers
Ranges = tuple[tuple[int, int], ...]


def ranges(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Ranges:
    """The IPv4 ones of ``networks`` as integer pairs (the IPv6 ones are the slow path's)."""
    return tuple(
        (int(n.network_address), int(n.netmask)) for n in networks if isinstance(n, ipaddress.IPv4Network)
    )


def ipv4_int(ip: str) -> int | None:
    """``ip`` as an integer when it is a dotted-quad IPv4 address, else None."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, ValueError):  # not a dotted quad; ValueError: NUL or not encodable
        return None


def in_ranges(address: int, table: Ranges) -> bool:
    return any(address & mask == net for net, mask in table)


#: What ``IPv4Address.is_global`` says no to (Python 3.11: the IANA special-purpose registry's
#: non-global blocks, and shared address space 100.64.0.0/10)
NOT_GLOBAL: Ranges = ranges(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/29",
        "192.0.0.170/31",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
)
