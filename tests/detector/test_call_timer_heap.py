"""The call table's timer heap finishes exactly the calls, in the order, that a scan of every call does.

``CallAssembler.expire`` pops due times from a heap instead of testing every open call each
capture second (issue 14). The scan it replaced is kept here as the reference; random message,
media and clock sequences must give both the same finished calls, same order, same records.
"""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from callqual.detector.call_assembler import AssemblerConfig, CallAssembler, ClosedBy
from callqual.detector.call_context import CallContext
from tests.detector.rules.factories import request, response, stream

T0 = 1_700_000_000.0


class _ScanningAssembler:
    """The table as it was: every open call tested at every expiry, in least-recently-active order.

    It wraps a table rather than subclassing it: the assembler may be compiled (mypyc), and an
    interpreted class cannot inherit from a compiled one.
    """

    def __init__(self, config: AssemblerConfig) -> None:
        self.table = CallAssembler(config)

    def __len__(self) -> int:
        return len(self.table)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)

    def expire(self, now: float) -> list[CallContext]:
        table = self.table
        done = [cid for cid, call in table._calls.items() if table._is_finished(call, now)]
        out = []
        for cid in done:
            call = table._calls.pop(cid)
            by: ClosedBy = "signalling" if call.dialog.ended_ts is not None else "timeout"
            out.append(table._context(call, by, now, due=sum(table._timer(call))))
        return out


def _seen(calls: list[CallContext]) -> list[tuple[Any, ...]]:
    return [(c.record.model_dump(), c.closed_by, c.due_ts, c.closed_ts, c.last_activity_ts) for c in calls]


_MESSAGES = ("INVITE", "ACK", "BYE", "CANCEL", 100, 180, 200, 401, 407, 486, 487, 503)

_op = st.tuples(
    st.sampled_from(("sip", "sip", "sip", "touch", "stream", "expire")),
    st.integers(0, 3),  # call
    st.sampled_from(_MESSAGES),
    st.integers(1, 3),  # CSeq number
    # time steps: mostly within a call's timers (linger 6 s, retry 32, INVITE 64, ringing 200, idle
    # 300), so a due time brought forward shows; some across them, and a step back
    st.sampled_from(
        (0.0, 0.1, 0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 5.5, 6.0, 7.0, 31.0, 33.0, 63.0, 65.0, 201.0, 301.0, -0.5)
    ),
)


def _apply(
    assembler: CallAssembler | _ScanningAssembler,
    op: tuple[str, int, str | int, int, float],
    ts: float,
    frame: int,
) -> Any:
    kind, n, what, cseq, _ = op
    call_id = f"call-{n}"
    if kind == "touch":
        assembler.touch(call_id, ts)
        return None
    if kind == "stream":
        return assembler.on_stream(stream(call_id=call_id, first_ts=ts - 1.0, last_ts=ts))
    if kind == "expire":
        return _seen(assembler.expire(ts))
    if isinstance(what, str):
        event = request(
            what, call_id=call_id, ts=ts, frame=frame, cseq_num=cseq, via_branch=f"z9hG4bK{frame}"
        )
    else:
        event = response(what, call_id=call_id, ts=ts, frame=frame, cseq_num=cseq, to_tag="t1")
    return _seen(assembler.on_sip(event))


@settings(max_examples=500, deadline=None)
@given(ops=st.lists(_op, min_size=10, max_size=120), max_calls=st.integers(2, 8))
def test_the_timer_heap_finishes_what_the_scan_finishes(
    ops: list[tuple[str, int, str | int, int, float]], max_calls: int
) -> None:
    config = AssemblerConfig(max_calls=max_calls)
    heap, scan = CallAssembler(config), _ScanningAssembler(config)
    ts = T0
    for frame, op in enumerate(ops, start=1):
        ts += op[4]
        assert _apply(heap, op, ts, frame) == _apply(scan, op, ts, frame)
        assert len(heap) == len(scan)
    assert _seen(heap.expire(ts + 1_000.0)) == _seen(scan.expire(ts + 1_000.0))
    assert len(heap) == 0


def test_stale_heap_entries_stay_bounded_by_the_open_calls() -> None:
    """Every BYE brings a call's due time forward (a new entry); the superseded ones are dropped."""
    assembler = CallAssembler()
    ts, finished = T0, 0
    for i in range(5_000):
        call_id = f"c{i}"
        assembler.on_sip(request("INVITE", call_id=call_id, ts=ts, frame=3 * i))
        assembler.on_sip(response(200, call_id=call_id, ts=ts + 0.1, frame=3 * i + 1, to_tag="t"))
        assembler.on_sip(request("BYE", call_id=call_id, ts=ts + 0.2, frame=3 * i + 2, to_tag="t"))
        ts += 0.01
        if i % 100 == 0:
            finished += len(assembler.expire(ts))
            assert len(assembler._due) <= 2 * len(assembler) + 1024 + 300
    finished += len(assembler.expire(ts + 10.0))
    assert finished == 5_000 and len(assembler) == 0
