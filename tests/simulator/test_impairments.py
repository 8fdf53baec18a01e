"""The impairment models on their own: statistics, invariants the labels rely on, RFC timers."""

import itertools
import random

import pytest

from callqual.simulator.impairments import JitterSpec, LossSpec, arrival_offsets, loss_mask, timer_a_schedule


def test_timer_a_doubles_from_t1() -> None:
    assert timer_a_schedule(0) == [0]
    assert timer_a_schedule(3) == [0, 500_000, 1_500_000, 3_500_000]


@pytest.mark.parametrize("spec", [LossSpec(random_pct=30.0), LossSpec(burst=(0.3, 0.2))])
def test_first_and_last_packets_always_arrive(spec: LossSpec) -> None:
    for seed in range(50):
        mask = loss_mask(spec, 40, random.Random(seed))
        assert not mask[0]
        assert not mask[-1]


def test_random_loss_rate() -> None:
    mask = loss_mask(LossSpec(random_pct=5.0), 200_000, random.Random(1))
    assert sum(mask) / len(mask) == pytest.approx(0.05, abs=0.003)


def test_gilbert_elliott_rate_and_burstiness() -> None:
    spec = LossSpec(burst=(0.02, 0.25))
    mask = loss_mask(spec, 200_000, random.Random(1))
    assert sum(mask) / len(mask) == pytest.approx(spec.expected_pct / 100, abs=0.01)
    bursts = sum(1 for i in range(1, len(mask)) if mask[i] and not mask[i - 1])
    assert sum(mask) / bursts == pytest.approx(1 / 0.25, rel=0.1)  # mean burst length 1/r


def test_jitter_keeps_order_unless_reordering_is_allowed() -> None:
    interval = 20_000
    ordered = arrival_offsets(JitterSpec(std_ms=40.0), 5000, interval, random.Random(2))
    arrivals = [i * interval + off for i, off in enumerate(ordered)]
    assert all(b > a for a, b in itertools.pairwise(arrivals))
    loose = arrival_offsets(JitterSpec(std_ms=40.0, reorder=True), 5000, interval, random.Random(2))
    arrivals = [i * interval + off for i, off in enumerate(loose)]
    assert any(b < a for a, b in itertools.pairwise(arrivals))
    assert all(off >= 0 for off in loose)


def test_reordering_keeps_the_first_packet_first_and_the_last_last() -> None:
    interval = 20_000
    for seed in range(20):
        offsets = arrival_offsets(JitterSpec(std_ms=30.0, reorder=True), 200, interval, random.Random(seed))
        arrivals = [i * interval + off for i, off in enumerate(offsets)]
        assert min(arrivals) == arrivals[0]
        assert max(arrivals) == arrivals[-1]
