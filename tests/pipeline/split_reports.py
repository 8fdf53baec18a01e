"""A capture's JSON report from an in-memory pipeline, one process or split (shared by the split tests)."""

import io
from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.call_assembler import AssemblerConfig
from callqual.detector.rules.settings import RuleSettings
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.split import run_split


def json_report(
    path: Path,
    *,
    split: bool,
    compact: bool = False,
    rules: RuleSettings | None = None,
    config: AssemblerConfig | None = None,
) -> bytes:
    """What ``write_json_report`` writes for ``path``, with the collector in a child when ``split``."""
    pipeline = EmbeddedPipeline(rule_settings=rules, assembler_config=config, compact_outputs=compact)
    with open_capture(path) as capture:
        if split:
            truncated, errors = run_split(pipeline, capture)
        else:
            pipeline.run(capture)
            truncated, errors = capture.truncated, capture.errors
        pipeline.finish()
        out = io.BytesIO()
        pipeline.write_json_report(out, str(path), truncated, errors)
    return out.getvalue()
