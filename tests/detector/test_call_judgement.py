"""The home partition's join of a call's record with its account owner's verdict."""

from callqual.detector.stages.call_judgement import (
    MAX_BATCH_BYTES,
    CallJoins,
    CallVerdict,
    FinishedCall,
    FinishedCalls,
    encoded_batches,
    route,
)
from callqual.schemas import CallRecord
from tests.detector.rules.factories import record


def joins() -> tuple[CallJoins, list[CallRecord]]:
    published: list[CallRecord] = []
    return CallJoins(published.append, max_waiting=10), published


def verdict(call_id: str, suspicious: bool, clock: float = 100.0, at_end: bool = False) -> CallVerdict:
    return CallVerdict(call_id=call_id, suspicious=suspicious, clock=clock, at_end=at_end)


def test_the_record_waits_for_the_verdict_and_either_can_come_first() -> None:
    j, published = joins()
    j.home(1, 10, 100.0, record(call_id="a"), suspicious=False, wait=True)
    assert published == [] and j.holds() == {1: 10}  # its messages are held until published
    j.verdict(1, 12, verdict("a", True))
    j.verdict(1, 13, verdict("b", False))
    j.home(1, 11, 100.0, record(call_id="b"), suspicious=True, wait=True)
    assert [(r.call_id, r.category) for r in published] == [("a", "suspicious"), ("b", "suspicious")]
    assert len(j) == 0 and j.holds() == {}


def test_a_call_with_nothing_to_wait_for_is_published_with_its_own_category() -> None:
    j, published = joins()
    j.home(0, 5, 100.0, record(call_id="c", state="failed", final_status=486), suspicious=False, wait=False)
    assert [r.category for r in published] == ["ok"]  # the call stage's category, untouched


def test_a_lone_verdict_is_dropped_once_the_member_is_past_it_and_a_record_never_expires() -> None:
    j, published = joins()
    j.verdict(2, 7, verdict("replayed", True, clock=100.0))
    j.verdict(2, 8, verdict("open-at-end", True, clock=100.0, at_end=True))
    j.home(2, 9, 100.0, record(call_id="waiting"), suspicious=False, wait=True)
    j.expire(100.0)
    assert len(j) == 3
    j.expire(5000.0)  # the call's copy (same position) was taken before: the verdict was a replay's
    assert len(j) == 2 and j.counters["verdicts_unmatched"] == 1
    j.drop_unmatched_at_end()  # every call open at the end was judged here: no match will come
    assert len(j) == 1 and published == []
    assert j.holds() == {2: 9}


def test_the_join_is_bounded() -> None:
    j, published = joins()
    for i in range(12):
        j.home(0, i, 100.0, record(call_id=f"c{i}"), suspicious=False, wait=True)
    j.expire(100.0)
    assert [r.call_id for r in published] == ["c0", "c1"] and j.counters["verdicts_missing"] == 2


def test_a_call_goes_home_to_its_caller_ip_and_its_account_sends_the_verdict() -> None:
    apart = route(record(call_id="x", caller_ip="192.0.2.2", from_uri="sip:alice@example.com"), 6)
    assert (apart.home, apart.account, apart.home_keys) == (1, 3, ["ip:192.0.2.2"])
    # Both keys on one partition: judged there at once, no verdict to wait for
    together = route(record(call_id="x", caller_ip="192.0.2.1", from_uri="sip:alice@example.com"), 6)
    assert (together.home, together.account) == (3, None)
    assert together.home_keys == ["ip:192.0.2.1", "call:x", "account:alice"]


def test_thousands_of_calls_finished_at_once_go_in_messages_a_broker_accepts() -> None:
    calls = [FinishedCall(record=record(call_id=f"c{i}"), due_ts=float(i)) for i in range(3000)]
    values = encoded_batches(calls)
    assert len(values) > 1 and all(len(v) <= MAX_BATCH_BYTES for v in values)
    decoded = [c for v in values for c in FinishedCalls.model_validate_json(v).calls]
    assert decoded == calls
