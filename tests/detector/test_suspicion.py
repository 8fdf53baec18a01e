"""A call's ``suspicious`` is judged as of its due time, whenever the judgement happens."""

from callqual.detector.call_assembler import CallAssembler
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules import RuleSettings
from callqual.detector.suspicion import SuspicionMarks, call_keys
from callqual.schemas import Alert
from tests.detector.rules.factories import CALLER, call_messages, ctx, record, request


def scanner_alert(first_ts: float, last_ts: float) -> Alert:
    return Alert(
        alert_id=f"scan-{first_ts}", rule="sip_scanner", severity="warning", call_id=None,
        source_ip=CALLER[0], first_ts=first_ts, last_ts=last_ts, summary="scan",
    )  # fmt: skip


def test_a_mark_raised_after_the_due_time_does_not_count_even_if_the_judgement_is_later() -> None:
    engine = RuleEngine(RuleSettings())
    assert engine.on_sip(request("OPTIONS", ts=1040.0, src=CALLER, user_agent="friendly-scanner"))
    call = ctx(rec=record(end_ts=1045.0))  # the scanner's incident starts at 1040, during the call
    call.due_ts = 1039.0  # its timer ran out before the scanner's message: one process judged it then
    assert engine.on_call(call)[1] == "ok"
    call.due_ts = 1051.0
    assert engine.on_call(call)[1] == "suspicious"


def test_a_later_mark_on_the_same_key_does_not_hide_the_one_current_at_the_due_time() -> None:
    marks = SuspicionMarks(max_keys=10, ttl_s=60.0)
    marks.put(scanner_alert(990.0, 995.0), raised_ts=995.0)
    marks.put(scanner_alert(2000.0, 2001.0), raised_ts=2001.0)  # a new incident, long after the call
    rec = record()
    assert [a.alert_id for a in marks.naming(rec, as_of=1038.0)] == ["scan-990.0"]
    assert marks.naming(rec, as_of=2500.0) == []  # as of then, the latest mark is the new incident
    assert call_keys(rec) == ["call:call-1", "account:alice", f"ip:{CALLER[0]}"]


def test_marks_are_bounded_in_keys_and_count_what_they_drop() -> None:
    marks = SuspicionMarks(max_keys=2, ttl_s=60.0)
    for i in range(3):
        alert = scanner_alert(float(i), float(i)).model_copy(update={"source_ip": f"192.0.2.{i}"})
        marks.put(alert, raised_ts=float(i))
    assert len(marks) == 2 and marks.evictions == 1


def test_the_assembler_gives_an_expired_call_the_time_its_timer_ran_out() -> None:
    assembler = CallAssembler()
    for message in call_messages():  # BYE at 1032, its 200 at 1032.1: the linger runs from there
        assembler.on_sip(message)
    (finished,) = assembler.expire(1050.0)  # found by a scan long after
    assert finished.due_ts == 1032.1 + assembler.config.linger_s
