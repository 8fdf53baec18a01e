"""A record the schema accepts but applying raises on is counted and dead-lettered; the alerter goes on.

No such record is known any more, so a grouper with a planted defect on one
alert stands in for the next one; records arrive as transport messages.
"""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from callqual.alerter.grouping import Grouper
from callqual.alerter.sender import Notifier
from callqual.alerter.service import AlerterService
from callqual.observability.metrics import AlerterMetrics
from callqual.pipeline.embedded import analyze_file
from callqual.schemas import Alert
from callqual.transport import TOPICS, InProcessBus, Message
from callqual.transport.codec import encode
from tests.shared_captures import PCAPS


class DefectiveGrouper(Grouper):
    def __init__(self, broken_alert: str) -> None:
        super().__init__()
        self.broken_alert = broken_alert

    def add(self, alert: Alert, now: float) -> bool:
        if alert.alert_id == self.broken_alert:
            raise KeyError("a grouping defect")
        return super().add(alert, now)


def test_a_record_that_raises_when_applied_is_dead_lettered_and_the_rest_notified() -> None:
    alerts = analyze_file(PCAPS / "rtp-pcap/aaa.pcap").alerts
    broken = alerts[0]
    bus = InProcessBus()
    metrics = AlerterMetrics(CollectorRegistry())
    service = AlerterService(
        metrics, Notifier([]), grouper=DefectiveGrouper(broken.alert_id), dead_letter=bus.sink()
    )
    for offset, alert in enumerate(alerts):
        service.handle(Message(TOPICS.alerts, 0, offset, alert.alert_id, encode(alert)))
    notified = {a.alert_id for n in service.flush() for a in n.alerts}
    assert notified == {a.alert_id for a in alerts[1:]}
    assert metrics.parse_errors.labels(reason="alerter.apply_failed")._value.get() == 1
    letter = bus.take([TOPICS.deadletter], 0)
    assert letter is not None and bus.take([TOPICS.deadletter], 0) is None
    doc = json.loads(letter.value)
    assert (doc["reason"], doc["topic"], doc["offset"]) == ("alerter.apply_failed", TOPICS.alerts, 0)
    assert doc["error"] == "KeyError: 'a grouping defect'"
    assert Alert.model_validate_json(doc["value"]) == broken
