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

    - ``sip``: collector -> detector, one event per SIP message, keyed by Call-ID.
    - ``media``: collector -> detector, RTP stream and RTCP reports, keyed by Call-ID.
    - ``calls``: detector -> alerter and storage, one record per finished call.
    - ``alerts``: detector -> alerter.
    - ``deadletter``: messages a consumer could not decode or apply, kept for inspection.
    """

    sip: str
    media: str
    calls: str
    alerts: str
    deadletter: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_TOPIC_PREFIX) -> Topics:
        return cls(
            sip=f"{prefix}sip",
            media=f"{prefix}media",
            calls=f"{prefix}calls",
            alerts=f"{prefix}alerts",
            deadletter=f"{prefix}deadletter",
        )

    def all(self) -> tuple[str, ...]:
        return (self.sip, self.media, self.calls, self.alerts, self.deadletter)


#: The default deployment's topics: ``callqual.sip``, ``callqual.media``, ...
TOPICS = Topics.with_prefix()
