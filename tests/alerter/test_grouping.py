"""Grouping: one notification per group and interval, de-duplication, a rate limit that delays."""

from __future__ import annotations

import pytest

from callqual.alerter.grouping import Grouper, GroupingPolicy
from tests.alerter.conftest import make_alert


def test_invite_flood_becomes_one_summarised_notification() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=10, group_interval_s=300, sample_size=5))
    for i in range(10_000):
        g.add(make_alert(f"flood-{i}", call_id=f"call-{i}", source_ip="198.51.100.7"), now=i / 1000)
    assert g.due(5.0) == []  # still within group_wait
    (n,) = g.due(10.0)
    assert n.count == 10_000
    assert len(n.alerts) == 5
    assert n.distinct_sources == 1 and n.distinct_calls == 10_000
    assert "10000 call_failed alerts" in n.summary
    assert g.pending() == 0


def test_later_alerts_wait_for_the_group_interval() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=0, group_interval_s=60))
    g.add(make_alert("a"), 0.0)
    assert [n.count for n in g.due(0.0)] == [1]
    g.add(make_alert("b"), 1.0)
    g.add(make_alert("c"), 2.0)
    assert g.due(30.0) == []
    assert g.next_deadline(30.0) == 60.0
    assert [n.count for n in g.due(60.0)] == [2]
    # Quiet for a whole interval: the group is forgotten, the next alert waits group_wait only.
    assert g.due(200.0) == []
    g.add(make_alert("d"), 201.0)
    assert [n.count for n in g.due(201.0)] == [1]


def test_groups_are_by_rule_and_severity() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=0))
    g.add(make_alert("a", rule="call_failed", severity="warning"), 0)
    g.add(make_alert("b", rule="call_failed", severity="critical"), 0)
    g.add(make_alert("c", rule="low_mos"), 0)
    assert sorted(n.group_key for n in g.due(0)) == [
        "call_failed/critical",
        "call_failed/warning",
        "low_mos/warning",
    ]


def test_duplicate_alert_ids_are_ignored() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=0))
    assert g.add(make_alert("a"), 0)
    assert not g.add(make_alert("a"), 0)
    (n,) = g.due(0)
    assert n.count == 1
    assert not g.add(make_alert("a"), 500)  # a replay after the notification
    assert g.duplicates == 2


def test_notification_ids_are_stable_across_runs() -> None:
    def run() -> list[str]:
        g = Grouper(GroupingPolicy(group_wait_s=0))
        for i in range(5):
            g.add(make_alert(f"x{i}"), 0)
        g.add(make_alert("solo", rule="low_mos"), 0)
        return sorted(n.notification_id for n in g.due(0))

    assert run() == run()


def test_rate_limit_delays_and_merges_never_drops() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=0, group_interval_s=1, max_per_minute=2))
    for rule in ("r1", "r2", "r3"):
        g.add(make_alert(rule, rule=rule), 0)
    first = g.due(0)
    assert len(first) == 2
    assert g.pending() == 1
    deadline = g.next_deadline(0)
    assert deadline == pytest.approx(30.0)
    assert g.due(10) == []
    (late,) = g.due(30)
    assert late.rule == "r3"


def test_flush_sends_everything_pending() -> None:
    g = Grouper(GroupingPolicy(group_wait_s=100))
    g.add(make_alert("a"), 0)
    g.add(make_alert("b", rule="low_mos"), 0)
    assert len(g.flush(1)) == 2
    assert g.pending() == 0


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        GroupingPolicy(group_interval_s=0)
