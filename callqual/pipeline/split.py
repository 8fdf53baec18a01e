"""``callqual analyze --split``: the collector in a child process, the detector in this one.

Why: on signalling the two halves cost about the same (issue 14: ~70 us a
message to decode, parse and build the event, ~45 to run the dialogs, rules
and records), so on two cores the capture is analysed in about the time of
the slower half. The child is forked with the capture already open and runs
the collector exactly as the embedded pipeline does; its events, and the
times of its ticks (after which the embedded pipeline judges the calls still
up), come back through a pipe in order, so the detector sees the very same
sequence and the report is byte-identical (``tests/pipeline/test_split.py``).

Hand-over: batches of ``_BATCH`` items, pickled with each wire model reduced
to its class and field dict and rebuilt unvalidated (``WireModel.trusted``'s
reasoning: they were built in this program a moment ago): ~3.6 us an event to
dump and ~6 to load, against ~5.4 and ~8 through pydantic's own pickling
(``bench/sip_stages.py``). The pipe is the bound: the child blocks while the
detector is behind, so at most a pipe buffer and one batch are in flight.
"""

import io
import multiprocessing
import pickle
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from callqual.collector.capture.pcap_file import CaptureFile
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent
from callqual.schemas.base import WireModel

__all__ = ["SplitPipelineError", "run_split"]

#: Items (events or tick times) per message through the pipe: large enough that pickling and
#: the system calls are paid per batch, small enough that the detector starts at once.
_BATCH = 512


class SplitPipelineError(RuntimeError):
    """The collector process failed (its traceback is the message) or died."""


@dataclass(frozen=True, slots=True)
class _End:
    """The child's last message: what the report needs from the collector and the capture."""

    totals: CollectorTotals
    truncated: bool
    reader_errors: Counter[str]


@dataclass(frozen=True, slots=True)
class _Failed:
    traceback: str


def _rebuild(cls: type[WireModel], state: dict[str, Any], fields_set: set[str] | None) -> WireModel:
    """A wire model back from :class:`_Pickler`'s reduction (None: every field was set).

    What ``WireModel.trusted`` does, with the field dict the unpickler already built.
    """
    model = cls.__new__(cls)
    _set(model, "__dict__", state)
    _set(model, "__pydantic_fields_set__", set(state) if fields_set is None else fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


_set = object.__setattr__


class _Pickler(pickle.Pickler):
    """Pickles a wire model as its class and field dict, not through pydantic's ``__reduce__``."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, WireModel):
            state = obj.__dict__
            fields_set = obj.__pydantic_fields_set__
            return _rebuild, (type(obj), state, None if len(fields_set) == len(state) else fields_set)
        return NotImplemented


def _dumps(obj: object) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def _collect(capture: CaptureFile, config: CollectorConfig, conn: Connection) -> None:
    """The child: run the collector over the capture, sending events and tick times in order."""
    try:
        pending: list[AnyEvent | float] = []

        def emit(event: AnyEvent) -> None:
            pending.append(event)
            if len(pending) >= _BATCH:
                conn.send_bytes(_dumps(pending))
                pending.clear()

        collector = Collector(emit, config, on_tick=pending.append)
        collector.run(capture)
        collector.finish()
        if pending:
            conn.send_bytes(_dumps(pending))
        totals = CollectorTotals.of(collector)
        conn.send_bytes(_dumps(_End(totals, capture.truncated, Counter(capture.errors))))
    except BaseException:  # the parent reports it; a child must not die silently
        conn.send_bytes(_dumps(_Failed(traceback.format_exc())))
    finally:
        conn.close()


def run_split(pipeline: EmbeddedPipeline, capture: CaptureFile) -> tuple[bool, Counter[str]]:
    """Run ``capture`` through ``pipeline`` with its collector in a forked child.

    Returns the capture's (truncated, reader errors), as the child's reader
    saw them. The caller then finishes and reports as usual; the
    pipeline's own collector is never fed, its totals come from the child.
    """
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_collect, args=(capture, pipeline.collector.config, send), name="callqual-collector"
    )
    child.start()
    send.close()
    try:
        while True:
            try:
                message = pickle.loads(receive.recv_bytes())
            except EOFError:
                raise SplitPipelineError(f"the collector process died (exit code {child.exitcode})") from None
            if isinstance(message, list):
                pipeline.run_events(message)
            elif isinstance(message, _End):
                pipeline.adopt_collector_totals(message.totals)
                return message.truncated, message.reader_errors
            else:
                raise SplitPipelineError(f"the collector process failed:\n{message.traceback}")
    finally:
        receive.close()
        child.join()
