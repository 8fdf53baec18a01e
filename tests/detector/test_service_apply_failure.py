"""An event the rules raise on is dead-lettered and counted; the detector service goes on with the next call.

No rule is known to raise any more (the fuzz harness looks for them), so a rule
with a planted defect stands in for the next one. Messages enter through the
service's own ``receive``/``apply_ready``, with the collector's real events and
headers; dead letters and outputs go to the in-process bus.
"""

from __future__ import annotations

import json

from callqual.detector.detector import Detector
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.base import SourceRule
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.service import DetectorService, DetectorServiceSettings
from callqual.detector.stages.call_judgement import H_PART, PART_CALLS, FinishedCalls
from callqual.fuzz.driver import load_capture
from callqual.fuzz.events import events_of
from callqual.pipeline.embedded import analyze_file
from callqual.schemas import Alert, SipMessageEvent
from callqual.transport import InProcessBus
from callqual.transport.base import Message
from callqual.transport.ordering import Marker, event_headers, marker_headers
from tests.shared_captures import PCAPS

BROKEN_CALL = "1-2161@10.0.2.20"  # sip-rtp-g722.pcap
NEXT_CALL = PCAPS / "rtp-pcap/sip-rtp-g729a.pcap"


class DefectiveRule(SourceRule):
    """A per-source rule with a defect that shows on one Call-ID only."""

    id = "defective"
    severity = "warning"

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        if event.call_id == BROKEN_CALL:
            raise ZeroDivisionError("a rule's defect")
        return []

    def flush(self) -> list[Alert]:
        return []


class DetectorWithADefect(DetectorService):
    def _new_detector(self) -> Detector:
        engine = RuleEngine(self.rules)
        engine.source_rules.append(DefectiveRule(self.rules))
        return Detector(self._on_output, engine, on_call_state=self._on_call_state)


def test_an_event_the_rules_raise_on_is_dead_lettered_and_the_next_call_reported() -> None:
    bus = InProcessBus()
    service = DetectorWithADefect(DetectorServiceSettings(), RuleSettings(), bus.sink())
    service.on_assign([0])
    events = [
        *events_of(load_capture(PCAPS / "rtp-pcap/sip-rtp-g722.pcap").frames),
        *events_of(load_capture(NEXT_CALL).frames),
    ]
    topic, run = service.topics.events, b"run-1"
    clock = 0.0
    for seq, event in enumerate(events):
        clock = float(event.get("ts", event.get("last_ts")))
        value = json.dumps(event).encode()
        service.receive(Message(topic, 0, seq, None, value, headers=event_headers(seq, clock, run)))
    end = marker_headers(Marker.END, len(events), clock, run)
    service.receive(Message(topic, 0, len(events), None, b"{}", headers=end))
    service.apply_ready()

    broken = sum(1 for e in events if e.get("call_id") == BROKEN_CALL and e["kind"] == "sip_message")
    assert service.counters["apply_failed"] == broken
    assert service.counters["runs_finished"] == 1
    letters = [json.loads(m.value) for m in iter(lambda: bus.take([service.topics.deadletter], 0), None)]
    assert len(letters) == broken
    assert all(d["reason"] == "detector.apply_failed" for d in letters)
    assert all(d["error"] == "ZeroDivisionError: a rule's defect" for d in letters)
    assert {json.loads(d["value"])["call_id"] for d in letters} == {BROKEN_CALL}
    # Finished calls go to the source stage, which judges ``suspicious`` and publishes them.
    calls = [
        call.record
        for m in iter(lambda: bus.take([service.topics.sources], 0), None)
        if dict(m.headers).get(H_PART) == PART_CALLS
        for call in FinishedCalls.model_validate_json(m.value).calls
    ]
    (expected,) = analyze_file(NEXT_CALL).calls
    assert [c for c in calls if c.call_id == expected.call_id] == [expected]
