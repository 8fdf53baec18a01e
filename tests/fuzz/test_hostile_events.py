"""Hostile events and records: the schema refuses them (dead letter) or detector and alerter apply them."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callqual.fuzz.driver import load_capture
from callqual.fuzz.events import drive_events, drive_records, events_of, mutate_events, records_of
from callqual.pipeline.embedded import analyze_file
from tests.shared_captures import PCAPS

STREAMS = [
    events_of(load_capture(PCAPS / name).frames)
    for name in (
        "heplify/sip_ipv4_tcp_retrans.pcap",
        "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
        "rtp-pcap/aaa.pcap",
        "sipnab/register-invite-reinvite-bye.pcap",
        "nDPI/fuzz-2006-06-26-2594.pcap",
    )
]


def test_a_nan_capture_time_is_refused_by_the_schema() -> None:
    """Was: ValueError (NaN to int) in the rules' sliding windows, which ended the detector service."""
    events = STREAMS[0]
    register = next(i for i, e in enumerate(events) if e.get("method") == "REGISTER")
    hostile = [json.dumps(e) for e in events]
    hostile[register] = json.dumps({**events[register], "ts": float("nan")})
    assert "NaN" in hostile[register]
    assert drive_events(hostile) == (len(events) - 1, 1)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.sampled_from(range(len(STREAMS))), seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8))
def test_hostile_events_are_refused_or_applied_never_raised(stream: int, seed: int, n: int) -> None:
    events = STREAMS[stream]
    applied, refused = drive_events(mutate_events(random.Random(seed), events, n))
    assert applied + refused == len(events) and refused <= n


REPORTS = [
    records_of(analyze_file(PCAPS / name)) for name in ("rtp-pcap/aaa.pcap", "rtp-pcap/SIP_DTMF2.pcap")
]


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(report=st.sampled_from(range(len(REPORTS))), seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8))
def test_hostile_records_are_refused_or_notified_never_raised(report: int, seed: int, n: int) -> None:
    """Calls, streams and alerts with hostile fields through the alerter and every payload."""
    topics, objects = zip(*REPORTS[report], strict=True)
    values = mutate_events(random.Random(seed), list(objects), n)
    _, refused = drive_records(list(zip(topics, values, strict=True)))
    assert refused <= n
