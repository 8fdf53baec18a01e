"""The split child's emit path, compiled: the source rules' verdict first, then the event, in batches.

Why its own module: every SIP message passes here once (``analyze --split``'s collector
process), and ``split.py`` is not compiled (it holds the process and pipe handling). As
interpreted closures, the verdict-first wrapper and the batcher were two Python frames per
message; here they are C calls (bench/RESULTS.md, session 7, sip-child). What a batch
becomes on the wire is the caller's ``flush`` (``event_codec``), not this module's concern.
"""

from collections.abc import Callable
from typing import Protocol

from callqual.detector.source_rules import SourceVerdict
from callqual.schemas import AnyEvent, MalformedSipEvent, SipMessageEvent

__all__ = ["Batcher", "ChildItem", "Judge", "VerdictsFirst"]

#: What the child sends, in order: events, tick times, and the source rules' verdicts.
ChildItem = AnyEvent | float | SourceVerdict


class Judge(Protocol):
    """What the verdicts come from (``SourceRules``); a protocol, so its methods are looked up on
    each call as in Python (a test injects a failing rule by patching the class)."""

    def verdict(self, event: SipMessageEvent) -> SourceVerdict | None: ...
    def malformed_verdict(self, event: MalformedSipEvent) -> SourceVerdict | None: ...


class Batcher:
    """Items gathered into lists of ``size``; each full list goes to ``flush``, then is reused."""

    def __init__(self, flush: Callable[[list[ChildItem]], None], size: int) -> None:
        self.pending: list[ChildItem] = []
        self._flush = flush
        self._size = size

    def add(self, item: ChildItem) -> None:
        pending = self.pending
        pending.append(item)
        if len(pending) >= self._size:
            self.flush()

    def flush(self) -> None:
        """Hand what is pending to ``flush`` (nothing if nothing is)."""
        if self.pending:
            self._flush(self.pending)
            self.pending.clear()


class VerdictsFirst:
    """The collector's emit in the child: the source rules' verdict on an observation (if any), then it."""

    def __init__(self, rules: Judge, send: Callable[[ChildItem], None]) -> None:
        self._rules = rules
        self._send = send

    def __call__(self, event: AnyEvent) -> None:
        send = self._send
        try:
            if isinstance(event, SipMessageEvent):
                verdict = self._rules.verdict(event)
            elif isinstance(event, MalformedSipEvent):
                verdict = self._rules.malformed_verdict(event)
            else:
                verdict = None
        except Exception:
            # A rule's bug: the event still reaches the detector, as in one process (where the
            # rules run after the call path), and the collector's frame guard counts the failure.
            send(event)
            raise
        if verdict is not None:
            send(verdict)
        send(event)
