"""The kernel (BPF) filter a live capture installs when none is given.

Kept apart from the capture machinery because it is policy, not I/O: which
ports carry SIP and media at a typical site, and which busy UDP services to
keep out of the ring. It is a pure string builder, tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DEFAULT_NOISE_PORTS", "DEFAULT_RTP_PORTS", "DEFAULT_SIP_PORTS", "default_bpf"]

#: SIP over UDP, TCP, TLS and SCTP (5060 plain, 5061 TLS) plus the collector's other usual ports.
DEFAULT_SIP_PORTS: tuple[int, ...] = (5060, 5061, 5062, 5080)
#: RTP/RTCP: SDP may put media on any unprivileged port, so the default range is all of them
#: (Asterisk uses 10000-20000, FreeSWITCH 16384-32768, phones anything): narrow it per site.
DEFAULT_RTP_PORTS: tuple[int, int] = (1024, 65535)
#: Busy UDP services whose datagrams land in the RTP range (a client's ephemeral port talks to
#: them) and which no VoIP media uses: DNS, DHCP, NTP, NetBIOS, SNMP, syslog, QUIC/HTTP3 (443),
#: SSDP, mDNS, LLMNR, VXLAN/OTV. Excluded so a busy span port does not fill the ring with them.
DEFAULT_NOISE_PORTS: tuple[int, ...] = (
    *(53, 67, 68, 123, 137, 138, 161, 162, 443, 514),  # DNS DHCP NTP NetBIOS SNMP QUIC syslog
    *(1900, 4789, 5353, 5355, 8472),  # SSDP VXLAN mDNS LLMNR OTV
)


def _port_list(proto: str, ports: Iterable[int]) -> str:
    return " or ".join(f"{proto} port {p}" for p in sorted(set(ports)))


def default_bpf(
    sip_ports: Iterable[int] = DEFAULT_SIP_PORTS,
    rtp_ports: tuple[int, int] = DEFAULT_RTP_PORTS,
    noise_ports: Iterable[int] = DEFAULT_NOISE_PORTS,
    vlan: bool = True,
) -> str:
    """The default kernel filter: SIP, RTP/RTCP, IP fragments and the tunnels the decoder opens.

    Fragments must pass because a large SIP INVITE over UDP is fragmented and
    only its first fragment carries the UDP ports. GRE (ERSPAN) and IP-in-IP
    pass whole because the filter cannot see the ports inside the tunnel. The
    same expression is repeated after ``vlan`` since libpcap's ``vlan``
    keyword shifts all later offsets by the tag (one tag; QinQ needs a custom
    filter); ``vlan=False`` leaves it out, as libpcap rejects it on links
    that carry no tags (Linux cooked capture of ``any``).
    """
    sip = [_port_list("udp", sip_ports), _port_list("tcp", sip_ports), _port_list("sctp", sip_ports)]
    lo, hi = rtp_ports
    media = f"udp portrange {lo}-{hi}"
    noise = list(noise_ports)
    if noise:
        media = f"({media} and not ({_port_list('udp', noise)}))"
    fragments = "(ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)"
    tunnels = "ip proto 47 or ip proto 4 or ip6 proto 47"
    inner = " or ".join(f"({part})" for part in [*sip, media, fragments, tunnels])
    return f"({inner}) or (vlan and ({inner}))" if vlan else inner
