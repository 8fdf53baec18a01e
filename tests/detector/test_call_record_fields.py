"""Call records and alert evidence are built unvalidated (issue 14): they must equal validated ones.

``call_record_fields`` and ``evidence_of`` feed ``WireModel.trusted``; validating the same fields
again must give the same model and the same JSON (a float field holding an int would print
``1`` where validation prints ``1.0``), on every shared capture.
"""

from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnalysisReport, CallRecord, EvidenceMessage
from tests.shared_captures import PCAPS

_CAPTURES = sorted(
    str(p.relative_to(PCAPS)) for p in PCAPS.glob("*/*") if p.suffix in (".pcap", ".pcapng", ".cap")
)


def _report(path: Path) -> AnalysisReport:
    pipeline = EmbeddedPipeline()
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
        return pipeline.report(str(path), capture.truncated, capture.errors)


def test_records_and_evidence_equal_their_validated_twins_on_every_shared_capture() -> None:
    calls = evidence = 0
    for name in _CAPTURES:
        report = _report(PCAPS / name)
        for record in report.calls:
            calls += 1
            assert list(record.__dict__) == list(CallRecord.model_fields), name  # every field, in order
            again = CallRecord.model_validate(record.__dict__)
            assert again == record, name
            assert again.model_dump_json() == record.model_dump_json(), name
        for alert in report.alerts:
            for item in alert.evidence:
                evidence += 1
                again_e = EvidenceMessage.model_validate(item.__dict__)
                assert again_e == item and again_e.model_dump_json() == item.model_dump_json(), name
    assert calls > 50 and evidence > 20
