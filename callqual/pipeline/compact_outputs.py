"""What ``callqual analyze --format json`` keeps of finished calls: their report JSON, not the models.

A finished call's record and alerts as pydantic models take ~10 KB; the
same as the bytes the report will print take a third of that, and a
signalling-only capture of 30,000 calls then fits in less memory than
tshark needs for it (issue 14). The bytes are exactly the report's
(``report_json.element_json``), kept with the key the report sorts on.
"""

from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter

from callqual.detector.detector import Output
from callqual.pipeline.report_json import element_json
from callqual.schemas import CallRecord, StreamRecord

_KEY = itemgetter(0)


@dataclass(slots=True)
class CompactOutputs:
    """The detector's outputs as (sort key, report JSON) pairs, kept as ``embedded._Outputs`` keeps them.

    A later version of an alert (the finished call's refinement of a mid-call
    alert, same id) replaces the earlier one in place.
    """

    calls: list[tuple[tuple[float, str], bytes]] = field(default_factory=list)
    streams: list[tuple[tuple[float, int, int], bytes]] = field(default_factory=list)
    alerts: list[tuple[tuple[float, str, str], bytes]] = field(default_factory=list)
    #: alert id -> its index in ``alerts``
    alert_ids: dict[str, int] = field(default_factory=dict)
    categories: Counter[str] = field(default_factory=Counter)

    def add(self, out: Output) -> None:
        if isinstance(out, CallRecord):
            self.calls.append(((out.start_ts, out.call_id), element_json(out)))
            self.categories[out.category] += 1
        elif isinstance(out, StreamRecord):
            self.streams.append(((out.first_ts, out.first_frame, out.ssrc), element_json(out)))
        else:
            kept = ((out.first_ts, out.rule, out.alert_id), element_json(out))
            index = self.alert_ids.get(out.alert_id)
            if index is None:
                self.alert_ids[out.alert_id] = len(self.alerts)
                self.alerts.append(kept)
            else:
                self.alerts[index] = kept

    def sorted_lists(self) -> dict[str, list[bytes]]:
        """Each list in the report's order (stable: ties keep arrival order, as ``sorted`` does)."""
        return {
            name: [element for _, element in sorted(items, key=_KEY)]
            for name, items in (("calls", self.calls), ("streams", self.streams), ("alerts", self.alerts))
        }
