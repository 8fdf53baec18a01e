"""The collector's signalling side: SIP and MGCP payloads in, SIP events and media endpoints out.

A SIP message becomes one event (or a malformed one, counted by reason); its
SDP, like an MGCP command's or response's, teaches the media registry which
endpoints carry which call's RTP. A BYE or a failed INVITE marks its call
ended (:attr:`Signalling.ended`), which the flow table reads to finish the
call's streams soon after. Pure: payloads and capture times in, events out.
"""

from collections import Counter, OrderedDict
from collections.abc import Callable

from callqual.collector.config import CollectorConfig
from callqual.collector.errors import SipParseError
from callqual.collector.media.media_registry import MediaRegistry
from callqual.collector.mgcp import parse_mgcp
from callqual.collector.packet import Payload
from callqual.collector.sip.events import malformed_sip_event, sip_message_event
from callqual.collector.sip.message import SipMessage, parse_sip
from callqual.collector.sip.sdp import parse_sdp, sdp_body
from callqual.schemas import AnyEvent, SdpMedia

__all__ = ["Signalling"]

#: MGCP transactions whose call id is remembered, so a response's SDP (which names no call)
#: is tied to its command's call; the oldest go first.
MGCP_TRANSACTIONS_KEPT = 10_000


class Signalling:
    """SIP and MGCP payload handling, counted in the collector's counters (shared, not copied)."""

    def __init__(
        self,
        emit: Callable[[AnyEvent], None],
        media: MediaRegistry,
        config: CollectorConfig,
        *,
        errors: Counter[str],
        counters: Counter[str],
        dropped: Counter[str],
    ) -> None:
        self._emit = emit
        self.media = media
        self.config = config
        self._keep_raw = config.keep_sip_raw
        self.errors = errors
        self.counters = counters
        self.dropped = dropped
        #: Call-ID -> capture time its signalling ended (BYE, final failure); bounded, oldest first
        self.ended: OrderedDict[str, float] = OrderedDict()
        #: MGCP transaction id -> call id, so a response's SDP is tied to its command's call
        self._mgcp_calls: OrderedDict[str, str] = OrderedDict()

    def on_sip(self, p: Payload) -> None:
        try:
            msg = parse_sip(p.data)
        except SipParseError as exc:
            # Cut by the capture's snaplen, not broken by its sender: say so, not what is missing.
            self._malformed(p, "sip.snapped" if p.cut else exc.reason)
            return
        if msg.anomalies:
            # Usable, but bent: published (the call goes on) and reported as malformed evidence.
            self._malformed(p, msg.anomalies[0], msg)
            for extra in msg.anomalies[1:]:
                self.errors[extra] += 1
        self.counters["sip.messages"] += 1
        sdp = self._sdp_of(msg)
        call_id = msg.call_id or ""
        if sdp:
            self.media.learn(call_id, sdp)
        self._track_call_end(msg, p.ts)
        self._emit(sip_message_event(p, msg, sdp, self._keep_raw))

    def on_mgcp(self, p: Payload) -> bool:
        """Learn media endpoints from MGCP SDP; True when the datagram was MGCP."""
        msg = parse_mgcp(p.data)
        if msg is None:
            return False
        self.counters["mgcp.messages"] += 1
        if msg.is_command and msg.call_id is not None:
            self._mgcp_calls[msg.transaction_id] = msg.call_id
            if len(self._mgcp_calls) > MGCP_TRANSACTIONS_KEPT:
                self._mgcp_calls.popitem(last=False)
        call = msg.call_id or self._mgcp_calls.get(msg.transaction_id) or f"txn-{msg.transaction_id}"
        if msg.sdp is not None:
            try:
                self.media.learn(f"mgcp:{call}", parse_sdp(msg.sdp))
            except SipParseError as exc:
                self.errors[exc.reason] += 1
        return True

    def _malformed(self, p: Payload, reason: str, usable: SipMessage | None = None) -> None:
        self.errors[reason] += 1
        self._emit(malformed_sip_event(p, reason, usable))

    def _sdp_of(self, msg: SipMessage) -> list[SdpMedia] | None:
        anomalies: list[str] = []
        try:
            body = sdp_body(msg)
            if body is None:
                return None
            return parse_sdp(body, anomalies)
        except SipParseError as exc:
            self.errors[exc.reason] += 1
            return None
        finally:
            for reason in anomalies:
                self.errors[reason] += 1

    def _track_call_end(self, msg: SipMessage, ts: float) -> None:
        """Remember when a call's signalling ended, so its streams can be finished soon after."""
        ended = (msg.is_request and msg.method == "BYE") or (
            not msg.is_request
            and msg.cseq_method == "INVITE"
            and msg.status_code is not None
            and msg.status_code >= 300
        )
        if not ended or not msg.call_id or msg.call_id in self.ended:
            return
        self.ended[msg.call_id] = ts
        if len(self.ended) > self.config.max_tracked_calls:
            self.ended.popitem(last=False)
            self.dropped["calls.end_table_evicted"] += 1
