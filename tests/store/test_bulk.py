"""The jsonb serialiser of the PostgreSQL bulk path: the same JSON values as ``json.dumps`` (the
server keeps jsonb parsed, so values are all that is stored), also where orjson alone would refuse."""

from __future__ import annotations

import json

from callqual.store.bulk import _json_dumps
from callqual.store.rows import alert_row, call_row, stream_row
from tests.store.captures import analyse


def test_records_serialise_to_the_same_json_values() -> None:
    report, _ = analyse("rtp-pcap/SIP_DTMF2.pcap")
    values = [
        *(call_row(c)["record"] for c in report.calls),
        *(stream_row(s)["record"] for s in report.streams),
        *(v for a in report.alerts for v in (alert_row(a)["details"], alert_row(a)["evidence"])),
    ]
    assert len(values) > 3
    for value in values:
        assert json.loads(_json_dumps(value)) == json.loads(json.dumps(value)) == value


def test_what_orjson_refuses_goes_as_json_dumps_wrote_it() -> None:
    value = {"big": 2**70, 7: [1.5, None, "é"]}
    assert (
        json.loads(_json_dumps(value))
        == json.loads(json.dumps(value))
        == {"big": 2**70, "7": [1.5, None, "é"]}
    )
