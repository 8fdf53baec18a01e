"""The two rule shapes and the helpers every rule shares.

A *call rule* judges one finished call in isolation; a *source rule* watches
the SIP stream of one source IP (or account) over capture-time windows.
Rules are pure: no I/O, no wall clock; the only time is the capture time in
the events, so replaying a capture yields the same alerts with the same ids.
"""

import functools
import hashlib
import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from mypy_extensions import mypyc_attr

from callqual.detector.call_context import CallContext
from callqual.detector.rules.settings import RuleSettings
from callqual.schemas import Alert, EvidenceMessage, Severity, SipMessageEvent
from callqual.schemas.prebuilt import every_field, prebuilt

if TYPE_CHECKING:
    from callqual.detector.rules.windows import SourceTable

#: Rules whose alerts are about an attacker rather than a call's quality.
SECURITY_RULES: frozenset[str] = frozenset(
    {"sip_scanner", "register_bruteforce", "sip_flood", "toll_fraud", "malformed_sip"}
)


def make_alert_id(rule: str, *key_parts: object) -> str:
    """Hash the incident's identity, so a replay of the same capture re-emits the same ids.

    Parts are joined with a unit separator, which never occurs in SIP
    tokens, so ``("a", "bc")`` and ``("ab", "c")`` cannot collide.
    """
    raw = "\x1f".join([rule, *[repr(p) if isinstance(p, float) else str(p) for p in key_parts]])
    return hashlib.sha1(raw.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()


def _headers(msg: SipMessageEvent) -> dict[str, str]:
    """The headers an alert shows, in this order, each only when present (written out: issue 14)."""
    headers: dict[str, str] = {}
    if msg.from_uri:
        headers["from"] = msg.from_uri
    if msg.to_uri:
        headers["to"] = msg.to_uri
    if msg.call_id:
        headers["call-id"] = msg.call_id
    if msg.cseq_num is not None:
        headers["cseq"] = f"{msg.cseq_num} {msg.cseq_method}"
    if msg.user_agent:
        headers["user-agent"] = msg.user_agent
    if msg.reason_header:
        headers["reason"] = msg.reason_header
    return headers


_EVIDENCE_FIELDS = every_field(EvidenceMessage)


def evidence_of(msg: SipMessageEvent) -> EvidenceMessage:
    """Unvalidated (issue 14): every field is the event's own, already valid, or built from it here."""
    return prebuilt(
        EvidenceMessage,
        {
            "frame": msg.frame,
            "ts": msg.ts,
            "src": f"{msg.src_ip}:{msg.src_port}",
            "dst": f"{msg.dst_ip}:{msg.dst_port}",
            "first_line": msg.first_line,
            "headers": _headers(msg),
        },
        _EVIDENCE_FIELDS,
    )


def evidence_from(messages: Iterable[SipMessageEvent], limit: int = 5) -> list[EvidenceMessage]:
    """The first ``limit`` messages as Wireshark pointers (frame numbers), oldest first.

    Bounded because an alert travels through Kafka and a mail/Slack sink: a
    handful of frames is enough to open the capture at the right place.
    """
    out: list[EvidenceMessage] = []
    for msg in messages:
        if len(out) >= limit:
            break
        out.append(evidence_of(msg))
    return out


@functools.lru_cache(maxsize=8192)  # pure; the rules ask it about the same URIs per message of a call
def uri_user(uri: str | None) -> str | None:
    """The user part of a SIP/tel URI (``"Bob" <sip:+4930123@h;x=y>`` -> ``+4930123``).

    Accounts and dialled numbers are compared on the user part only: the
    host often differs between an IP and a domain for the same account.
    """
    if not uri:
        return None
    s = uri.strip()
    if "<" in s:
        s = s[s.index("<") + 1 :]
        s = s.split(">", 1)[0]
    for scheme in ("sips:", "sip:", "tel:"):
        if s[: len(scheme)].lower() == scheme:
            s = s[len(scheme) :]
            break
    if "@" in s:
        s = s.split("@", 1)[0]
    elif uri.strip().lower().startswith(("sip:", "sips:", "<sip")) or "<sip" in uri.lower():
        return None  # sip:host has no user part
    s = s.split(";", 1)[0].split("?", 1)[0]
    return s or None


def parse_networks(cidrs: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def ip_in(ip: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


# Rules are the detector's extension point: one written in plain Python may subclass these
# bases even when the built-in rules are compiled (scripts/build-compiled).
@mypyc_attr(allow_interpreted_subclasses=True)
class CallRule(ABC):
    """Judges one finished call; returns at most a few alerts about it."""

    id: ClassVar[str]
    severity: ClassVar[Severity]

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings

    @abstractmethod
    def evaluate(self, ctx: CallContext) -> list[Alert]: ...

    def alert(
        self,
        ctx: CallContext,
        summary: str,
        details: dict[str, float | int | str | None],
        evidence: Iterable[SipMessageEvent] = (),
        severity: Severity | None = None,
    ) -> Alert:
        """One alert per (rule, call): the id hashes the Call-ID and the call's first frame."""
        rec = ctx.record
        last_ts = rec.end_ts
        if last_ts is None:
            last_ts = max((m.ts for m in ctx.messages), default=rec.start_ts)
        return Alert(
            alert_id=make_alert_id(self.id, rec.call_id, rec.first_frame),
            rule=self.id,
            severity=severity or self.severity,
            call_id=rec.call_id,
            source_ip=rec.caller_ip,
            first_ts=rec.start_ts,
            last_ts=max(last_ts, rec.start_ts),
            summary=summary,
            details=details,
            evidence=evidence_from(evidence, self.settings.evidence_limit),
        )


@mypyc_attr(allow_interpreted_subclasses=True)
class SourceRule(ABC):
    """Watches SIP messages per source over capture-time windows.

    One alert per (rule, source, incident): the window aggregates, the
    incident suppresses repeats until the source has been quiet for
    ``incident_quiet_s``. ``evictions`` counts keys dropped from bounded
    tables (capacity or idle expiry), so an operator can see when the
    tables are too small for the traffic.
    """

    id: ClassVar[str]
    severity: ClassVar[Severity]
    #: The rule's per-key state (source, account...), bounded and expiring in capture time
    _table: "SourceTable[Any]"

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings

    @abstractmethod
    def observe(self, event: SipMessageEvent) -> list[Alert]: ...

    def source_alert(
        self,
        key: str,
        first_ts: float,
        last_ts: float,
        summary: str,
        *,
        details: dict[str, float | int | str | None],
        evidence: Iterable[SipMessageEvent | EvidenceMessage] = (),
        source_ip: str | None,
        call_id: str | None = None,
        severity: Severity | None = None,
        id_parts: Sequence[object] = (),
    ) -> Alert:
        """One alert per (rule, key, incident): the id hashes the key and the incident's first event time."""
        ev = list(evidence)
        limit = self.settings.evidence_limit
        return Alert(
            alert_id=make_alert_id(self.id, key, *id_parts, first_ts),
            rule=self.id,
            severity=severity or self.severity,
            call_id=call_id,
            source_ip=source_ip,
            first_ts=first_ts,
            last_ts=max(first_ts, last_ts),
            summary=summary,
            details=details,
            evidence=[evidence_of(e) if isinstance(e, SipMessageEvent) else e for e in ev[:limit]],
        )

    def flush(self) -> list[Alert]:
        """End of input: forget all state.

        Alerts are raised when a threshold is crossed, never deferred, so
        there is nothing left to emit; the method exists so a rule that
        needs end-of-window evaluation can add it without changing callers.
        """
        self.reset()
        return []

    def reset(self) -> None:
        self._table.clear()

    @property
    def evictions(self) -> int:
        return self._table.evictions

    @property
    def table_size(self) -> int:
        return len(self._table)
