"""The shared helpers: alert ids, evidence, URI users, bounded tables and windows."""

import pytest

from callqual.detector.rules import evidence_from, make_alert_id, uri_user
from callqual.detector.rules.windows import Incident, SlidingCounter, SourceTable
from tests.detector.rules.factories import call_messages


def test_alert_ids_are_deterministic_and_distinct() -> None:
    a = make_alert_id("sip_scanner", "192.0.2.1", 12.5)
    assert a == make_alert_id("sip_scanner", "192.0.2.1", 12.5)
    assert len(a) == 40 and int(a, 16) >= 0
    assert a != make_alert_id("sip_flood", "192.0.2.1", 12.5)
    assert a != make_alert_id("sip_scanner", "192.0.2.1", 12.6)
    # Parts cannot run into each other.
    assert make_alert_id("r", "a", "bc") != make_alert_id("r", "ab", "c")


def test_evidence_from_cites_frames_and_key_headers() -> None:
    ev = evidence_from(call_messages(), limit=2)
    assert [e.frame for e in ev] == [1, 2]
    first = ev[0]
    assert first.src == "198.51.100.10:5060" and first.dst == "203.0.113.20:5060"
    assert first.first_line == "INVITE sip:bob@example.com SIP/2.0"
    assert first.headers == {
        "from": "sip:alice@example.com",
        "to": "sip:bob@example.com",
        "call-id": "call-1",
        "cseq": "1 INVITE",
        "user-agent": "PhoneA",
    }
    bye = evidence_from(call_messages()[5:6])[0]
    assert bye.headers["reason"] == "Q.850;cause=16"


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("sip:alice@example.com", "alice"),
        ('"Alice" <sip:+4930123@h;user=phone>;tag=1', "+4930123"),
        ("<sips:bob@h:5061;transport=tls>", "bob"),
        ("tel:+15551234;phone-context=x", "+15551234"),
        ("SIP:1001@10.0.0.1", "1001"),
        ("sip:example.com", None),
        ("<sip:example.com>", None),
        ("", None),
        (None, None),
    ],
)
def test_uri_user(uri: str | None, user: str | None) -> None:
    assert uri_user(uri) == user


def test_source_table_bounds_and_counts() -> None:
    t: SourceTable[list[int]] = SourceTable(max_size=3, idle_s=10.0)
    for i in range(5):
        t.touch(f"k{i}", float(i), list)
    assert len(t) == 3 and t.evicted == 2 and "k0" not in t
    t.touch("k2", 5.0, list)  # refresh k2: k3 is now the oldest
    t.touch("k9", 14.5, list)  # k3 (3.0) and k4 (4.0) idle for > 10 s
    assert [k for k, _ in t.items()] == ["k2", "k9"] and t.expired == 2 and t.evictions == 4
    # Capture time going backwards does not expire anything new.
    t.touch("k8", 1.0, list)
    assert len(t) == 3


def test_sliding_counter_window() -> None:
    c = SlidingCounter(window_s=10.0, buckets=10)
    for i in range(10):
        c.add(float(i))
    assert c.total(9.5) == 10
    assert c.total(15.0) == 4  # buckets 6..9 remain in (5, 15]
    assert c.total(100.0) == 0


def test_incident_suppresses_until_quiet() -> None:
    inc = Incident(quiet_s=60.0)
    assert not inc.active(0.0)
    inc.open(0.0, 1.0, 10)
    assert inc.active(50.0) and inc.active(100.0)  # activity keeps it open
    assert not inc.active(161.0) and inc.first_ts is None
