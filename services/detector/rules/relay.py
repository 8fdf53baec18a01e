"""Recognises the copies of a SIP request that a proxy relays, so per-source rules see each request once.

When the span port sees both legs (attacker -> Kamailio -> callee UA), every
flood INVITE appears twice, the second time from the proxy's own address:
counted per source, our proxy would be reported as an attacker. A relayed
copy is recognised by what was observed, not by what the message claims:
the same transaction (Call-ID, CSeq number and method) *arrived at* its
sender from another address first. The Via chain (more Vias, the bottom
one's ``received``/``rport``) would say the same, but its contents are the
sender's to forge; arrival order is not. The first copy is the one counted,
so rules attribute the request to its origin; the relayed copies, and the
responses travelling back on the relayed leg, are skipped. A B2BUA (new
Call-ID per leg) is a new origin, as it is to SIP itself.
"""

from dataclasses import dataclass

from callqual.detector.rules.windows import SourceTable
from callqual.schemas import MalformedSipEvent, SipMessageEvent


@dataclass(init=False, slots=True)
class _Transaction:
    origin: str
    #: addresses the request reached (its destinations so far); tuples: usually one or two
    reached: tuple[str, ...] = ()
    #: addresses seen relaying it onwards
    relays: tuple[str, ...] = ()

    def __init__(
        self,
        origin: str,
        reached: tuple[str, ...] = (),
        relays: tuple[str, ...] = (),
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.origin = origin
        self.reached = reached
        self.relays = relays


class RelayTracker:
    """Bounded memory of recent transactions, keyed by Call-ID, CSeq number and method; capture time only."""

    #: A transaction holds at most this many addresses (a pathological fork cannot grow it).
    MAX_ADDRESSES = 16

    def __init__(self, max_transactions: int, window_s: float) -> None:
        self._table: SourceTable[_Transaction] = SourceTable(max_transactions, window_s)
        self.relayed = 0

    def is_relayed(self, event: SipMessageEvent) -> bool:
        """A request relayed by a proxy that had already received it, or a response on the relayed leg."""
        key = f"{event.call_id}\x1f{event.cseq_num}\x1f{event.cseq_method or event.method}"
        if not event.is_request:
            txn = self._table.get(key)
            relayed = txn is not None and event.dst_ip in txn.relays
        else:
            txn = self._table.touch(key, event.ts, lambda: _Transaction(event.src_ip))
            relayed = event.src_ip != txn.origin and event.src_ip in txn.reached
            if relayed and event.src_ip not in txn.relays and len(txn.relays) < self.MAX_ADDRESSES:
                txn.relays += (event.src_ip,)
            if event.dst_ip not in txn.reached and len(txn.reached) < self.MAX_ADDRESSES:
                txn.reached += (event.dst_ip,)
        self.relayed += relayed
        return relayed

    def is_relayed_malformed(self, event: MalformedSipEvent) -> bool:
        """A bent message (it parsed, with anomalies) that is a relayed copy, as in :meth:`is_relayed`.

        Proxies pass on what they can parse, non-UTF-8 headers included: the
        proxy's copy must not count as its own malformed SIP. Read-only: the
        same frame's SipMessageEvent, which follows, updates the table.
        """
        if event.call_id is None:
            return False  # unparseable: a proxy cannot relay what it cannot parse either
        txn = self._table.get(f"{event.call_id}\x1f{event.cseq_num}\x1f{event.cseq_method}")
        if txn is None:
            relayed = False
        elif event.excerpt.startswith("SIP/"):  # a response: on the relayed leg when it goes to a relay
            relayed = event.dst_ip in txn.relays
        else:
            relayed = event.src_ip != txn.origin and event.src_ip in txn.reached
        self.relayed += relayed
        return relayed

    @property
    def evictions(self) -> int:
        return self._table.evictions

    def clear(self) -> None:
        self._table.clear()
