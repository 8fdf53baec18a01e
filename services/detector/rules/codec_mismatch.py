"""codec_mismatch: RTP carries a payload type the SDP exchange did not agree on.

The receiver cannot decode such packets (silence or noise), typically a
gateway that ignores the answer or a transcoder misconfiguration. The
negotiated set is the answer's formats plus the offer's numbers for the
same encodings (dynamic types may be renumbered between offer and
answer); without an answer, the offer's formats.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import audio, sdp_messages
from callqual.schemas import Alert, SdpMedia

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


class CodecMismatch(CallRule):
    id = "codec_mismatch"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        rec = ctx.record
        offer = encodings(audio(rec.offered_media))
        answer = encodings(audio(rec.answered_media))
        if answer:
            names = {n for n in answer.values() if n}
            allowed = set(answer) | {pt for pt, n in offer.items() if n and n in names}
        elif offer:
            allowed = set(offer)
        else:
            return []
        ignored = set(self.settings.codec_mismatch_ignored_payload_types)
        negotiated_names = {**offer, **answer}
        bad: dict[int, int] = {}  # payload type -> packets of streams carrying it
        for st in ctx.streams:
            for pt in {st.payload_type, *st.payload_types}:
                if pt in allowed or pt in ignored:
                    continue
                bad[pt] = bad.get(pt, 0) + st.packets
        if not bad:
            return []
        return [
            self.alert(
                ctx,
                f"RTP payload type(s) {sorted(bad)} not negotiated (SDP allowed {sorted(allowed)})",
                {
                    "unexpected_payload_types": ",".join(str(pt) for pt in sorted(bad)),
                    "negotiated_payload_types": ",".join(str(pt) for pt in sorted(allowed)),
                    "negotiated_encodings": ",".join(
                        sorted({n for pt, n in negotiated_names.items() if pt in allowed and n})
                    ),
                    "packets": sum(bad.values()),
                },
                sdp_messages(ctx),
            )
        ]
