"""Which source-stage partitions an observation goes to, and which one owns an alert.

The per-source rules read more than a source's own requests: the answers sent back to it
(brute force, host sweeps), the requests others sent it first (a scanner's "who contacted
whom"), an account's calls in both directions (toll fraud) and, for the flood rule's
all-sources total, every flood-method request. So an observation goes to the partition of
each key it concerns; the member owning a partition runs the rules on everything it gets and
publishes only the alerts whose own key lands on that partition. A key's every observation
thus meets in one member, in emission order: the alerts one process would raise.
"""

from __future__ import annotations

import zlib

from callqual.detector.rules.base import uri_user
from callqual.schemas import Alert, MalformedSipEvent, SipMessageEvent

#: The flood rule's all-sources total (``sip_flood.TOTAL_KEY``)
ALL_SOURCES = "*"


def partition_of(key: str, partitions: int) -> int:
    """A stable partition for ``key`` (the same in every process and on every run)."""
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % partitions


def observation_keys(event: SipMessageEvent | MalformedSipEvent, flood_methods: frozenset[str]) -> set[str]:
    """Every key whose per-source state this observation may change."""
    if isinstance(event, MalformedSipEvent):
        return {f"ip:{event.src_ip}"}
    keys = {f"ip:{event.src_ip}", f"ip:{event.dst_ip}"}
    for uri in (event.from_uri, event.to_uri):
        account = uri_user(uri)
        if account:
            keys.add(f"account:{account}")
    if event.is_request and event.method in flood_methods:
        keys.add(ALL_SOURCES)
    return keys


def alert_key(alert: Alert) -> str:
    """The key an alert is raised for: its account (toll fraud), its source, or all sources."""
    account = alert.details.get("account")
    if alert.rule == "toll_fraud" and isinstance(account, str):
        return f"account:{account}"
    if alert.source_ip is not None:
        return f"ip:{alert.source_ip}"
    return ALL_SOURCES


def observation_partitions(
    event: SipMessageEvent | MalformedSipEvent, flood_methods: frozenset[str], partitions: int
) -> list[int]:
    """The source-stage partitions ``event`` goes to, each once, in order."""
    return sorted({partition_of(k, partitions) for k in observation_keys(event, flood_methods)})
