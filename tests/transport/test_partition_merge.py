"""The k-way merge of partitions by ``(clock, seq)`` and its safe commit positions, by hand.

The same class run by a detector member on a real capture: tests/detector/test_member_replay.py.
"""

from callqual.transport.ordering import Marker
from callqual.transport.partition_merge import PartitionMerge


def test_heads_wait_until_every_partition_has_shown_a_later_position() -> None:
    merge: PartitionMerge[str] = PartitionMerge()
    merge.assign([0, 1])
    merge.push(0, 0, (1.0, 0), "a")
    merge.push(0, 1, (2.0, 2), "c")
    assert list(merge.pop_ready()) == [], "partition 1 may still hold something earlier"
    merge.push(1, 0, (1.5, 1), "b")
    assert [r.payload for r in merge.pop_ready()] == ["a", "b"]
    merge.push_marker(1, 1, Marker.WATERMARK, (3.0, 3))
    assert [r.payload for r in merge.pop_ready()] == ["c"]


def test_a_silent_partition_is_passed_by_force_and_the_overflow_counted() -> None:
    merge: PartitionMerge[str] = PartitionMerge(max_pending=2)
    merge.assign([0, 1])
    merge.push(0, 0, (1.0, 0), "a")
    assert list(merge.pop_ready()) == []
    assert [r.payload for r in merge.pop_ready(force=True)] == ["a"]
    for i in range(4):
        merge.push(0, i + 1, (2.0 + i, i + 1), f"x{i}")
    assert [r.payload for r in merge.pop_ready()] == ["x0", "x1"]
    assert merge.counters["forced"] == 2


def test_commit_positions_keep_the_first_offset_of_a_held_key() -> None:
    merge: PartitionMerge[str] = PartitionMerge()
    merge.assign([0])
    for offset in range(4):
        merge.push(0, offset, (float(offset), offset), f"e{offset}")
    merge.push_marker(0, 4, Marker.END, None)
    ready = list(merge.pop_ready())
    assert [r.offset for r in ready] == [0, 1, 2, 3]
    merge.hold("call-1", 0, 1)
    merge.hold("call-1", 0, 3)  # a later event of the same call does not move the hold
    assert merge.commit_positions() == {0: 1}
    merge.release("call-1")
    assert merge.commit_positions() == {0: 5}
    assert merge.all_ended()


def test_end_markers_on_every_partition_end_the_run() -> None:
    merge: PartitionMerge[str] = PartitionMerge()
    merge.assign([0, 1])
    merge.push_marker(0, 0, Marker.END, None)
    assert not merge.all_ended()
    merge.push_marker(1, 0, Marker.END, None)
    assert list(merge.pop_ready()) == []
    assert merge.all_ended()
