"""The rules' integer IPv4 tests answer exactly what ``ipaddress`` answers (issue 14's fast path)."""

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st

from callqual.detector.rules.ipv4_ranges import NOT_GLOBAL, ipv4_int
from callqual.detector.rules.sdp_private_address import (
    DOCUMENTATION_NETWORKS,
    PRIVATE_NETWORKS,
    is_private,
    is_public,
)


def _reference_private(ip: str) -> bool:
    """The rule's test as it was, on ``ipaddress`` objects."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in PRIVATE_NETWORKS)


def _reference_public(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_global or any(addr in net for net in DOCUMENTATION_NETWORKS)


def _boundaries() -> list[int]:
    """Each table network's first and last address and their neighbours, plus two whole /24s."""
    nets = [
        *PRIVATE_NETWORKS,
        *DOCUMENTATION_NETWORKS,
        *(ipaddress.IPv4Network((net, bin(mask).count("1"))) for net, mask in NOT_GLOBAL),
    ]
    out = [*range(0xC0000000, 0xC0000100), *range(0xFFFFFF00, 0x100000000)]  # 192.0.0.0/24, 255.255.255.0/24
    for n in nets:
        if isinstance(n, ipaddress.IPv4Network):
            first, last = int(n.network_address), int(n.broadcast_address)
            out += [a for a in (first - 1, first, first + 1, last - 1, last, last + 1) if 0 <= a < 2**32]
    return out


def test_the_tables_agree_with_ipaddress_at_every_boundary() -> None:
    for n in _boundaries():
        ip = str(ipaddress.IPv4Address(n))
        assert is_public.__wrapped__(ip) == _reference_public(ip), ip
        assert is_private.__wrapped__(ip) == _reference_private(ip), ip


@settings(max_examples=2_000, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_any_ipv4_address_is_classified_as_ipaddress_classifies_it(n: int) -> None:
    ip = str(ipaddress.IPv4Address(n))
    assert ipv4_int(ip) == n
    assert is_public.__wrapped__(ip) == _reference_public(ip)
    assert is_private.__wrapped__(ip) == _reference_private(ip)


@settings(max_examples=2_000, deadline=None)
@given(st.text(alphabet="0123456789.:afx /\x00\u0661", max_size=20))
@example("01.2.3.4")
@example("1.2.3")
@example("1.2.3.4.")
@example("256.1.1.1")
@example(" 1.2.3.4")
@example("1.2.3.4/32")
@example("::ffff:10.0.0.1")
@example("fc00::1")
@example("2001:db8::1")
@example("\u0661.2.3.4")
def test_any_text_parses_and_classifies_as_ipaddress_does(text: str) -> None:
    try:
        expected: int | None = int(ipaddress.IPv4Address(text))
    except ValueError:
        expected = None
    assert ipv4_int(text) == expected
    assert is_public.__wrapped__(text) == _reference_public(text)
    assert is_private.__wrapped__(text) == _reference_private(text)
