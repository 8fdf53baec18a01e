"""Topic names, in one place.

Every service derives its topic names from one prefix so that two deployments
(or two test sessions) can share a cluster without reading each other's
traffic, and so that a renamed topic cannot leave one service behind.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TOPIC_PREFIX = "callqual."


@dataclass(frozen=True, slots=True)
class Topics:
    """The pipeline's topics for one prefix.

    - ``events``: collector -> detector, every collector event (SIP messages, malformed SIP,
      RTP stream reports, RTCP), keyed by Call-ID. One topic, not one per kind: Kafka
      orders messages only within a partition, and the detector must see a call's SIP and
      media in the order the collector emitted them, so they share a topic and a key.
    - ``sip`` / ``media``: the same events split by kind, for consumers that want one kind
      only; the services neither create nor use them (no cross-topic ordering).
    - ``calls``: detector -> alerter and storage, one record per finished call.
    - ``streams``: detector -> storage, one record per finished RTP stream.
    - ``alerts``: detector -> alerter.
    - ``call_state``: detector -> alerter and storage, compact updates about calls in flight
      (``CallStateUpdate``, keyed by Call-ID); the call's record on ``calls`` supersedes them.
    - ``deadletter``: messages a consumer could not decode or apply, kept for inspection.
    """

    sip: str
    media: str
    calls: str
    events: str
    streams: str
    alerts: str
    deadletter: str
    call_state: str = "callqual.callstate"

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_TOPIC_PREFIX) -> Topics:
        return cls(
            sip=f"{prefix}sip",
            media=f"{prefix}media",
            calls=f"{prefix}calls",
            events=f"{prefix}events",
            streams=f"{prefix}streams",
            alerts=f"{prefix}alerts",
            deadletter=f"{prefix}deadletter",
            call_state=f"{prefix}callstate",
        )

    def all(self) -> tuple[str, ...]:
        """The per-kind topic set (``sip``/``media`` split); the services use :meth:`pipeline`."""
        return (self.sip, self.media, self.calls, self.alerts, self.deadletter)

    def pipeline(self) -> tuple[str, ...]:
        """The topics the collector and detector services use (and create at start-up)."""
        return (self.events, self.calls, self.streams, self.alerts, self.deadletter, self.call_state)


#: The default deployment's topics: ``callqual.sip``, ``callqual.media``, ...
TOPICS = Topics.with_prefix()
