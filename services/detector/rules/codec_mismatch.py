"""codec_mismatch: RTP carries a payload type the SDP exchange did not agree on.

The receiver cannot decode such packets (silence or noise), typically a
gateway that ignores the answer or a transcoder misconfiguration. The
negotiated set of one exchange is the answer's formats plus the offer's
numbers for the same encodings (dynamic types may be renumbered between
offer and answer); without an answer, the offer's formats. A call can
renegotiate (a re-INVITE from PCMU to opus): each stream is judged against
the exchanges in force while it ran, from an offer until the next answer
replaced it, never against the last SDP alone.
"""

import math
from collections.abc import Callable

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import audio, sdp_messages
from callqual.detector.sdp_exchange import SdpExchange
from callqual.schemas import Alert, SdpMedia, StreamRecord

#: RFC 3551 static payload types, for SDP that lists them without a=rtpmap.
STATIC_ENCODINGS: dict[int, str] = {
    0: "pcmu",
    3: "gsm",
    4: "g723",
    5: "dvi4",
    6: "dvi4",
    7: "lpc",
    8: "pcma",
    9: "g722",
    10: "l16",
    11: "l16",
    12: "qcelp",
    13: "cn",
    14: "mpa",
    15: "g728",
    16: "dvi4",
    17: "dvi4",
    18: "g729",
}


def encodings(media: list[SdpMedia]) -> dict[int, str]:
    out: dict[int, str] = {}
    for m in media:
        for pt in m.payload_types:
            name = m.rtpmap.get(pt) or STATIC_ENCODINGS.get(pt, "")
            out[pt] = name.split("/", 1)[0].lower()
    return out


def _allowed(offer_media: list[SdpMedia], answer_media: list[SdpMedia]) -> dict[int, str]:
    """Payload type -> encoding one offer/answer allows (the offer's alone when unanswered)."""
    offer = encodings(audio(offer_media))
    answer = encodings(audio(answer_media))
    if not answer:
        return offer
    names = {n for n in answer.values() if n}
    return {**{pt: n for pt, n in offer.items() if n and n in names}, **answer}


def _in_force(exchanges: list[SdpExchange]) -> list[tuple[float, float, dict[int, str]]]:
    """(from, until, allowed) per negotiation: from its offer until the next one's first answer.

    Sibling exchanges (answers to one offer: both legs through a transcoding
    relay, a 183 then a 200) allow the union of their formats.
    """
    groups: list[list[SdpExchange]] = []
    for ex in exchanges:
        if groups and (groups[-1][0].offerer, groups[-1][0].cseq) == (ex.offerer, ex.cseq):
            groups[-1].append(ex)
        else:
            groups.append([ex])
    out = []
    for i, group in enumerate(groups):
        start = -math.inf if i == 0 else group[0].offer_ts
        nxt = groups[i + 1][0].answer_ts if i + 1 < len(groups) else None
        allowed: dict[int, str] = {}
        for ex in group:
            allowed.update(_allowed(list(ex.offer), list(ex.answer)))
        out.append((start, math.inf if nxt is None else nxt, allowed))
    return out


class CodecMismatch(CallRule):
    id = "codec_mismatch"
    severity = "warning"

    def _allowed_for(self, ctx: CallContext) -> Callable[[StreamRecord], dict[int, str]]:
        periods = _in_force(ctx.sdp.exchanges)
        if not periods:
            # Only the record is known (or no offer was ever answered): its caller and callee SDP.
            rec = ctx.record
            fixed = _allowed(rec.offered_media, rec.answered_media)
            return lambda st: fixed

        def during(st: StreamRecord) -> dict[int, str]:
            out: dict[int, str] = {}
            for start, until, allowed in periods:
                if start <= st.last_ts and until >= st.first_ts:
                    out.update(allowed)
            return out

        return during

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        if not ctx.streams:
            return []  # nothing to judge; skips building the periods (issue 14: a signalling-only hot spot)
        allowed_for = self._allowed_for(ctx)
        ignored = set(self.settings.codec_mismatch_ignored_payload_types)
        bad: dict[int, int] = {}  # payload type -> packets of streams carrying it
        allowed: dict[int, str] = {}  # what the offending streams were allowed
        for st in ctx.streams:
            permitted = allowed_for(st)
            if not permitted:
                continue  # no SDP for this call: nothing to compare with
            wrong = {st.payload_type, *st.payload_types} - set(permitted) - ignored
            for pt in wrong:
                bad[pt] = bad.get(pt, 0) + st.packets
            if wrong:
                allowed.update(permitted)
        if not bad:
            return []
        return [
            self.alert(
                ctx,
                f"RTP payload type(s) {sorted(bad)} not negotiated (SDP allowed {sorted(allowed)})",
                {
                    "unexpected_payload_types": ",".join(str(pt) for pt in sorted(bad)),
                    "negotiated_payload_types": ",".join(str(pt) for pt in sorted(allowed)),
                    "negotiated_encodings": ",".join(sorted({n for n in allowed.values() if n})),
                    "packets": sum(bad.values()),
                },
                sdp_messages(ctx),
            )
        ]
