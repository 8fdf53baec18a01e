"""The analysis report as indented JSON, written record by record.

``model_dump_json(indent=2)`` of a 30,000-call report builds a ~100 MB document
in memory and, inside the serializer, about as much again: a fifth of the
peak memory of ``callqual analyze`` on a signalling-only capture (issue 14).
Written here one record at a time, the bytes are the same (the report's
serializer for the frame, each record's own for its element, indented to
its depth; JSON strings carry no raw newline, so indenting by lines is safe).
"""

from typing import BinaryIO

from pydantic import BaseModel

from callqual.schemas import AnalysisReport

#: The report's list fields, in the order the model declares them
_LISTS = ("calls", "streams", "alerts")
#: An element of a top-level list sits two levels deep: 4 spaces at indent=2
_ELEMENT_INDENT = b"    "


def write_report_json(report: AnalysisReport, out: BinaryIO) -> None:
    """Write ``report`` as ``model_dump_json(indent=2)`` would, plus a final newline."""
    frame = report.model_copy(update={name: [] for name in _LISTS})
    head = frame.__pydantic_serializer__.to_json(frame, indent=2)
    rest = head
    for name in _LISTS:
        marker = b'\n  "%s": []' % name.encode()
        before, found, rest = rest.partition(marker)
        if not found:  # pragma: no cover - the frame above always has the key
            raise ValueError(f"report JSON without {name!r}")
        out.write(before)
        out.write(b'\n  "%s": ' % name.encode())
        _write_list(getattr(report, name), out)
    out.write(rest)
    out.write(b"\n")


def _write_list(items: list[BaseModel], out: BinaryIO) -> None:
    if not items:
        out.write(b"[]")
        return
    out.write(b"[\n")
    for i, item in enumerate(items):
        if i:
            out.write(b",\n")
        text = item.__pydantic_serializer__.to_json(item, indent=2)
        out.write(_ELEMENT_INDENT + text.replace(b"\n", b"\n" + _ELEMENT_INDENT))
    out.write(b"\n  ]")
