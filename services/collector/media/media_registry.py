"""Which UDP endpoints carry media, and for which call, as learnt from SDP.

Wireshark ties RTP to a call the same way: every SDP ``c=``/``m=`` pair sets up
an RTP "conversation" on that address and port (and RTCP on port+1), matched
from either side, from the frame of the SDP onwards, the latest SDP winning
(one that gives the port to T.38 fax ends its RTP).
Doing what the reference does is what makes our stream list equal tshark's.

Bounded: an LRU of at most ``max_bindings`` endpoints; evictions are counted.
"""

from collections import Counter, OrderedDict
from dataclasses import dataclass

from callqual.schemas import SdpMedia


@dataclass(slots=True, init=False)
class MediaBinding:
    """Which call an endpoint's media belongs to; never changed once made (a new SDP makes a new one).

    ``__init__`` is written out and compared by :meth:`same`: mypyc leaves a dataclass's
    generated methods interpreted, and both run for every SDP endpoint learnt.
    """

    call_id: str
    is_rtcp: bool
    #: payload type -> 'encoding/clock[/channels]' of the SDP that set the binding up
    rtpmap: dict[int, str]

    def __init__(self, call_id: str, is_rtcp: bool, rtpmap: dict[int, str]) -> None:
        self.call_id = call_id
        self.is_rtcp = is_rtcp
        self.rtpmap = rtpmap

    def same(self, other: "MediaBinding | None") -> bool:
        """Equal to ``other`` (the dataclass's ``==``, which mypyc leaves interpreted)."""
        return (
            other is not None
            and self.call_id == other.call_id
            and self.is_rtcp == other.is_rtcp
            and self.rtpmap == other.rtpmap
        )


class MediaRegistry:
    def __init__(self, max_bindings: int = 200_000) -> None:
        self._max = max_bindings
        self._bindings: OrderedDict[tuple[str, int], MediaBinding] = OrderedDict()
        self.dropped: Counter[str] = Counter()
        #: Bumped on every change, so a cache keyed on bindings knows it is stale.
        self.generation = 0
        #: Endpoints whose binding changed (set, replaced or evicted) since take_changes():
        #: a cache drops only what involves them, not everything, on each new SDP.
        self._changed: set[tuple[str, int]] = set()

    def __len__(self) -> int:
        return len(self._bindings)

    def learn(self, call_id: str, media: list[SdpMedia]) -> None:
        for m in media:
            if m.connection_ip is None or m.port == 0:
                continue
            if m.proto.lower() == "udptl":
                # A T.38 fax switch-over (image udptl t38): Wireshark hands the port to T.38, so RTP
                # still arriving there is no longer counted. RTCP on port+1 stays, as there.
                self._unbind((m.connection_ip, m.port))
                continue
            if not m.proto.upper().startswith("RTP"):
                continue
            rtpmap = dict(m.rtpmap)
            self._bind((m.connection_ip, m.port), MediaBinding(call_id, False, rtpmap))
            self._bind((m.connection_ip, m.port + 1), MediaBinding(call_id, True, rtpmap))

    def _bind(self, endpoint: tuple[str, int], binding: MediaBinding) -> None:
        if binding.same(self._bindings.get(endpoint)):
            self._bindings.move_to_end(endpoint)
            return
        self._bindings[endpoint] = binding
        self._bindings.move_to_end(endpoint)
        self.generation += 1
        self._changed.add(endpoint)
        if len(self._bindings) > self._max:
            evicted, _ = self._bindings.popitem(last=False)
            self._changed.add(evicted)
            self.dropped["media.binding_evicted"] += 1

    def _unbind(self, endpoint: tuple[str, int]) -> None:
        if self._bindings.pop(endpoint, None) is not None:
            self.generation += 1
            self._changed.add(endpoint)

    def take_changes(self) -> set[tuple[str, int]]:
        """The endpoints whose binding changed since the last call (at most two per binding learnt)."""
        changed, self._changed = self._changed, set()
        return changed

    def lookup(self, src_ip: str, src_port: int, dst_ip: str, dst_port: int) -> MediaBinding | None:
        """The binding for a datagram: its destination first (the SDP says where to send), then source."""
        binding = self._bindings.get((dst_ip, dst_port))
        if binding is None:
            binding = self._bindings.get((src_ip, src_port))
        return binding
