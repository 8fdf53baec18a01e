"""sdp_private_address: a message from a public address advertises a private media address.

A phone behind NAT without STUN/ALG/SBC fixing puts its LAN address in
SDP ``c=``; the far end then sends RTP into the void: the root cause of
most one-way and no-audio calls across the Internet. Private means
RFC 1918, RFC 6598 (carrier-grade NAT) and IPv6 ULA (fc00::/7); public
means a globally routable signalling source.
"""

import functools
import ipaddress

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.ipv4_ranges import NOT_GLOBAL, in_ranges, ipv4_int, ranges
from callqual.schemas import Alert, SipMessageEvent

PRIVATE_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("fc00::/7"),
)
_PRIVATE_V4 = ranges(PRIVATE_NETWORKS)


@functools.lru_cache(maxsize=8192)  # pure; asked about every SDP address of every finished call
def is_private(ip: str | None) -> bool:
    if not ip:
        return False
    v4 = ipv4_int(ip)
    if v4 is not None:
        return in_ranges(v4, _PRIVATE_V4)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in PRIVATE_NETWORKS)


#: RFC 5737 / RFC 3849 documentation ranges: not routed, but they stand for public addresses in
#: examples, lab captures and simulated traffic, where a NATted phone must still be recognised.
DOCUMENTATION_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)
_DOCUMENTATION_V4 = ranges(DOCUMENTATION_NETWORKS)


@functools.lru_cache(maxsize=8192)  # pure, and each call asks it about the same few addresses
def is_public(ip: str) -> bool:
    """Globally routable, or a documentation address standing in for one.

    ``is_global`` alone says no to the documentation ranges, so a capture
    that uses them for the Internet side (as the RFCs ask) would never alert.
    """
    v4 = ipv4_int(ip)
    if v4 is not None:
        return not in_ranges(v4, NOT_GLOBAL) or in_ranges(v4, _DOCUMENTATION_V4)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_global or any(addr in net for net in DOCUMENTATION_NETWORKS)


class SdpPrivateAddress(CallRule):
    id = "sdp_private_address"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        offending: list[SipMessageEvent] = []
        addresses: list[str] = []
        for m in ctx.messages:
            if not m.sdp or not is_public(m.src_ip):
                continue
            private = [md.connection_ip for md in m.sdp if md.port != 0 and is_private(md.connection_ip)]
            if private:
                offending.append(m)
                addresses.extend(ip for ip in private if ip and ip not in addresses)
        if not offending:
            return []
        first = offending[0]
        return [
            self.alert(
                ctx,
                f"SDP from public {first.src_ip} advertises private media address {addresses[0]}",
                {
                    "signalling_ip": first.src_ip,
                    "sdp_addresses": ",".join(addresses),
                    "messages": len(offending),
                },
                offending,
            )
        ]
