"""Every SDP of one call, by the party that sent it, and its offer/answer exchanges (RFC 3264).

A call has two parties for its whole life, but offers come from either side:
a callee's session-refresh re-INVITE, a hold from the callee, an UPDATE, a
late offer in the 200. Which way a stream flows is fixed by the party whose
media address it leaves from or arrives at (any address that party ever
advertised), and which payload types were allowed depends on the exchange in
force while the stream ran, so both are kept here rather than "the last SDP".
Pure and bounded.
"""

from dataclasses import dataclass, field
from typing import Literal

from callqual.schemas import SdpMedia

Party = Literal["caller", "callee"]

#: Distinct m= lines kept per party, and exchanges kept per call (the first and the latest ones).
MAX_MEDIA_PER_PARTY = 32
MAX_EXCHANGES = 32


@dataclass(init=False, slots=True)
class SdpExchange:
    """One offer and one answer to it (``answer_ts`` None while outstanding); never changed once made.

    Consecutive exchanges with the same offerer and CSeq are siblings, several
    answers to one offer, in force together. Not a frozen dataclass: its written-out
    ``__init__`` (mypyc leaves a dataclass's generated one interpreted) could not assign.
    """

    offerer: Party
    cseq: int
    offer_ts: float
    offer: tuple[SdpMedia, ...]
    answer_ts: float | None = None
    answer: tuple[SdpMedia, ...] = ()

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        offerer: Party,
        cseq: int,
        offer_ts: float,
        offer: tuple[SdpMedia, ...],
        answer_ts: float | None = None,
        answer: tuple[SdpMedia, ...] = (),
    ) -> None:
        self.offerer = offerer
        self.cseq = cseq
        self.offer_ts = offer_ts
        self.offer = offer
        self.answer_ts = answer_ts
        self.answer = answer


@dataclass(init=False, slots=True)
class SdpHistory:
    """What each party advertised, and the completed exchanges in order."""

    caller: list[SdpMedia] = field(default_factory=list)
    callee: list[SdpMedia] = field(default_factory=list)
    caller_latest: list[SdpMedia] = field(default_factory=list)
    callee_latest: list[SdpMedia] = field(default_factory=list)
    exchanges: list[SdpExchange] = field(default_factory=list)
    pending: SdpExchange | None = None

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        caller: list[SdpMedia] | None = None,
        callee: list[SdpMedia] | None = None,
        caller_latest: list[SdpMedia] | None = None,
        callee_latest: list[SdpMedia] | None = None,
        exchanges: list[SdpExchange] | None = None,
        pending: SdpExchange | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.caller = [] if caller is None else caller
        self.callee = [] if callee is None else callee
        self.caller_latest = [] if caller_latest is None else caller_latest
        self.callee_latest = [] if callee_latest is None else callee_latest
        self.exchanges = [] if exchanges is None else exchanges
        self.pending = pending

    def on_sdp(self, party: Party, ts: float, media: list[SdpMedia], cseq: int, *, is_response: bool) -> None:
        """Record one SDP body sent by ``party`` (retransmissions already filtered out)."""
        seen = self.caller if party == "caller" else self.callee
        for m in media:
            if m not in seen and len(seen) < MAX_MEDIA_PER_PARTY:
                seen.append(m)
        if party == "caller":
            self.caller_latest = list(media)
        else:
            self.callee_latest = list(media)
        pending = self.pending
        if pending is not None and pending.offerer != party:
            self._complete(
                SdpExchange(pending.offerer, pending.cseq, pending.offer_ts, pending.offer, ts, tuple(media))
            )
            self.pending = None
            return
        last = self.exchanges[-1] if self.exchanges else None
        if (
            is_response
            and pending is None
            and last is not None
            and last.offerer != party
            and last.cseq == cseq
        ):
            # Another answer to the same offer: the 200 after a 183, the other leg's copy through a
            # proxy (rewritten by a media relay that may transcode), a forked branch. A sibling, kept.
            if last.answer != tuple(media):
                self._complete(
                    SdpExchange(last.offerer, last.cseq, last.offer_ts, last.offer, ts, tuple(media))
                )
            return
        self.pending = SdpExchange(party, cseq, ts, tuple(media))

    def on_rejected(self, responder: Party, cseq: int) -> None:
        """A final error to the request that carried the outstanding offer: the offer never took effect.

        Each side numbers its own CSeq: only the other party's answer to the offerer's request counts.
        """
        pending = self.pending
        if pending is not None and pending.cseq == cseq and pending.offerer != responder:
            self.pending = None

    def _complete(self, exchange: SdpExchange) -> None:
        self.exchanges.append(exchange)
        if len(self.exchanges) > MAX_EXCHANGES:
            del self.exchanges[1]  # keep the initial exchange: the early streams ran under it
