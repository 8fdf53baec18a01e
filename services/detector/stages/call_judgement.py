"""A finished call's ``suspicious``, judged in the source stage where the security marks are.

A call's marks live with two keys' owners: its caller IP's (scanners, brute force, floods,
malformed SIP) and its account's (toll fraud, which also marks the Call-ID). So the call stage
sends each finished call (record and due time) to both partitions, in emission order among the
observations, and each owner judges its own keys as of the due time (``suspicion.py``). The
caller IP's partition is the call's *home*: the account's owner sends its verdict there, and the
home's owner publishes the record once it has both, a join on Call-ID. Whichever member owns
what, the category is the one ``callqual analyze`` gives.

A call's messages are held (commits do not pass them) until it is published; a verdict whose
call was published before (a replay) is dropped once this member is past it; the join is bounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from pydantic import BaseModel

from callqual.detector.rules.base import uri_user
from callqual.detector.source_routing import partition_of
from callqual.detector.suspicion import account_keys, ip_key
from callqual.schemas import CallRecord
from callqual.schemas.packet_content import PacketText
from callqual.transport.codec import encode

#: On the ``sources`` topic: what a message that is not an observation carries
H_PART = "callqual-part"
PART_CALLS = b"calls"
PART_VERDICT = b"verdict"


class FinishedCall(BaseModel):
    record: CallRecord
    #: When its timer ran out; None: still open at the end of the input (judged there)
    due_ts: float | None = None


class FinishedCalls(BaseModel):
    """The calls one call-stage member finished while applying one event, for one partition."""

    kind: Literal["finished_calls"] = "finished_calls"
    calls: list[FinishedCall]


class CallVerdict(BaseModel):
    """The account owner's judgement of a call, sent to the call's home partition."""

    kind: Literal["call_verdict"] = "call_verdict"
    call_id: PacketText
    suspicious: bool
    #: Capture clock at which the call was judged (ages an unmatched verdict)
    clock: float
    #: A call still open at the end of the input: its home judges it at the end too
    at_end: bool = False


class CallRoute(NamedTuple):
    """Where a call is judged: ``home`` publishes it; ``account`` (if apart) sends a verdict."""

    home: int
    account: int | None
    #: The keys judged on ``home`` (its caller IP's, and its account's when they share it)
    home_keys: list[str]


def route(record: CallRecord, partitions: int) -> CallRoute:
    ip = ip_key(record)
    account = uri_user(record.from_uri)
    own = account_keys(record) if account else []
    account_partition = partition_of(f"account:{account}", partitions) if account else None
    if ip is None:
        home = (
            account_partition if account_partition is not None else partition_of(record.call_id, partitions)
        )
        return CallRoute(home, None, own)
    home = partition_of(ip, partitions)
    if account_partition is None or account_partition == home:
        return CallRoute(home, None, [ip, *own])
    return CallRoute(home, account_partition, [ip])


def destinations(record: CallRecord, partitions: int) -> list[int]:
    """The ``sources`` partitions a finished call goes to."""
    r = route(record, partitions)
    return [r.home] if r.account is None else sorted({r.home, r.account})


#: A finished-calls message stays under this (brokers refuse 1 MiB by default): a scan at the
#: end of a busy capture finishes thousands of calls at once
MAX_BATCH_BYTES = 256 * 1024


def encoded_batches(calls: list[FinishedCall]) -> list[bytes]:
    """``calls`` as :class:`FinishedCalls` messages, halved until each fits ``MAX_BATCH_BYTES``
    (a single call is sent alone whatever its size)."""
    value = encode(FinishedCalls(calls=calls))
    if len(value) <= MAX_BATCH_BYTES or len(calls) == 1:
        return [value]
    half = len(calls) // 2
    return [*encoded_batches(calls[:half]), *encoded_batches(calls[half:])]


@dataclass(slots=True)
class _Join:
    partition: int
    clock: float
    offsets: list[int] = field(default_factory=list)
    record: CallRecord | None = None
    suspicious: bool = False
    #: The account owner's verdict is in, or none is needed
    verdict: bool = False
    at_end: bool = False


class CallJoins:
    """Home-side join of a call's record with its account owner's verdict; publishes when whole."""

    def __init__(self, publish: Callable[[CallRecord], None], max_waiting: int) -> None:
        self._publish = publish
        self.max_waiting = max_waiting
        self._joins: dict[str, _Join] = {}
        self.counters: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._joins)

    def home(
        self, partition: int, offset: int, clock: float, record: CallRecord, *, suspicious: bool, wait: bool
    ) -> None:
        """The call judged on its home partition; ``wait``: an account verdict is to come."""
        join = self._joins.setdefault(record.call_id, _Join(partition, clock))
        join.offsets.append(offset)
        join.record = record
        join.suspicious = join.suspicious or suspicious
        join.verdict = join.verdict or not wait
        self._complete(record.call_id, join)

    def verdict(self, partition: int, offset: int, verdict: CallVerdict) -> None:
        join = self._joins.setdefault(verdict.call_id, _Join(partition, verdict.clock))
        join.at_end = verdict.at_end
        join.offsets.append(offset)
        join.suspicious = join.suspicious or verdict.suspicious
        join.verdict = True
        self._complete(verdict.call_id, join)

    def _complete(self, call_id: str, join: _Join) -> None:
        if join.record is None or not join.verdict:
            return
        del self._joins[call_id]
        record = join.record
        if join.suspicious:
            record = record.model_copy(update={"category": "suspicious"})
        self.counters["published"] += 1
        self._publish(record)

    def expire(self, clock: float) -> None:
        """Drop lone verdicts older than ``clock``: their call came before (a replay) and was published.

        Once this member applied an observation later than a verdict's clock, the call's own
        copy (same position, on a lane of this member) was taken too. A record waiting for its
        verdict never expires by time: the verdict may sit behind a backlog of this partition.
        Only the bound (``max_waiting``) publishes the oldest without it, counted.
        """
        old = [cid for cid, j in self._joins.items() if j.record is None and not j.at_end and j.clock < clock]
        for call_id in old:
            del self._joins[call_id]
            self.counters["verdicts_unmatched"] += 1
        while len(self._joins) > self.max_waiting:
            call_id, join = next(iter(self._joins.items()))
            self.counters["verdicts_missing"] += 1
            if join.record is None:
                del self._joins[call_id]
            else:
                join.verdict = True
                self._complete(call_id, join)

    def drop_unmatched_at_end(self) -> None:
        """This member judged every call open at the end of its input: a lone verdict on one
        (judged at the end elsewhere) was a replay's."""
        for call_id in [cid for cid, j in self._joins.items() if j.record is None and j.at_end]:
            del self._joins[call_id]
            self.counters["verdicts_unmatched"] += 1

    def holds(self) -> dict[int, int]:
        """Per partition, the first offset a join still needs."""
        out: dict[int, int] = {}
        for join in self._joins.values():
            low = min(join.offsets)
            out[join.partition] = min(out.get(join.partition, low), low)
        return out

    def clear(self) -> None:
        self._joins.clear()
