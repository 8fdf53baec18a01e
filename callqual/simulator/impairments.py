"""Network impairments as deterministic functions of a seeded ``random.Random``.

Everything here describes what the *capture point* sees: a lost packet is
simply absent from the file, jitter moves a packet's capture timestamp. The
capture point is assumed to sit next to the receiver, so the loss a reader
counts from sequence-number gaps is exactly the loss injected here.
"""

import random
from dataclasses import dataclass

#: RFC 3261 17.1.1.2: T1, the initial INVITE retransmission interval.
TIMER_T1_US = 500_000


@dataclass(frozen=True, slots=True)
class LossSpec:
    """Random (Bernoulli) loss, or a two-state Gilbert-Elliott burst model when ``burst`` is set.

    Gilbert-Elliott: ``p`` = P(good -> bad) per packet, ``r`` = P(bad -> good);
    every packet in the bad state is lost, none in the good state (the
    "simple Gilbert" variant), so the mean loss is p / (p + r) and the mean
    burst length 1 / r.
    """

    random_pct: float = 0.0
    burst: tuple[float, float] | None = None

    @property
    def expected_pct(self) -> float:
        if self.burst is not None:
            p, r = self.burst
            return 100.0 * p / (p + r)
        return self.random_pct

    @property
    def active(self) -> bool:
        return self.random_pct > 0 or self.burst is not None


def loss_mask(spec: LossSpec, count: int, rng: random.Random) -> list[bool]:
    """Which of ``count`` packets are lost.

    The first and last packets always get through: readers count loss from
    the first to the highest sequence number received, so a lost tail would
    be invisible to them and the labels would disagree with every analyser.
    """
    lost = [False] * count
    if not spec.active or count < 3:
        return lost
    if spec.burst is not None:
        p, r = spec.burst
        bad = False
        for i in range(1, count - 1):
            bad = rng.random() >= r if bad else rng.random() < p
            lost[i] = bad
    else:
        threshold = spec.random_pct / 100.0
        for i in range(1, count - 1):
            lost[i] = rng.random() < threshold
    return lost


@dataclass(frozen=True, slots=True)
class JitterSpec:
    """Per-packet queueing delay on top of the path delay: normal, mean 2 x ``std_ms``, floored at 0.

    With ``reorder=False`` a packet never overtakes its predecessor (it is
    held back to 100 us after it), as on a single FIFO path. That caps the
    RFC 3550 jitter near the packet interval (~20-25 ms whatever the std), so
    "heavy jitter" needs ``reorder=True``: the noisy times are used as they
    are and packets arrive out of order, as over Wi-Fi or multipath links.
    """

    std_ms: float = 0.0
    reorder: bool = False


def arrival_offsets(spec: JitterSpec, count: int, interval_us: int, rng: random.Random) -> list[int]:
    """Extra delay (us) of each packet relative to its nominal arrival time."""
    if spec.std_ms <= 0:
        return [0] * count
    sigma = spec.std_ms * 1000.0
    mean = 2.0 * sigma
    offsets = [max(0, round(rng.gauss(mean, sigma))) for _ in range(count)]
    if not spec.reorder:
        for i in range(1, count):
            earliest = offsets[i - 1] - interval_us + 100
            offsets[i] = max(offsets[i], earliest)
    elif count > 1:
        # The first packet arrives first and the last one last: readers anchor the expected
        # count on them, and a reordered first packet makes Wireshark report negative loss.
        earliest = min(i * interval_us + offsets[i] for i in range(1, count))
        offsets[0] = max(0, min(offsets[0], earliest - 100))
        latest = max(i * interval_us + offsets[i] for i in range(count - 1))
        offsets[-1] = max(offsets[-1], latest - (count - 1) * interval_us + 100)
    return offsets


def timer_a_schedule(retransmissions: int) -> list[int]:
    """Send times (us, from the first send) of an INVITE and its ``retransmissions`` copies.

    RFC 3261 17.1.1.2: timer A starts at T1 and doubles after each firing.
    """
    times = [0]
    interval = TIMER_T1_US
    for _ in range(retransmissions):
        times.append(times[-1] + interval)
        interval *= 2
    return times
