"""Writes the JSON Schema of every wire model into ``schemas/json/``.

Run ``python -m callqual.schemas.export`` after changing a model; a test fails
while the committed files and the models disagree, so consumers in other
languages never read a stale contract.
"""

import json
import sys
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from callqual.schemas.alerts import Alert
from callqual.schemas.events import Event
from callqual.schemas.records import CallRecord, CallStateUpdate, StreamRecord
from callqual.schemas.report import AnalysisReport

JSON_DIR = Path(__file__).resolve().parent / "json"


def schemas() -> dict[str, dict[str, object]]:
    """File name -> JSON Schema, for every message that crosses a transport."""
    models: dict[str, type[BaseModel]] = {
        "alert": Alert,
        "call-record": CallRecord,
        "call-state": CallStateUpdate,
        "stream-record": StreamRecord,
        "analysis-report": AnalysisReport,
    }
    out = {f"{name}.schema.json": model.model_json_schema() for name, model in models.items()}
    out["collector-event.schema.json"] = TypeAdapter(Event).json_schema()
    return out


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for name, schema in schemas().items():
        (JSON_DIR / name).write_text(render(schema), encoding="utf-8")
        print(f"wrote {JSON_DIR / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
