"""``simulate``: scenario specs -> merged, time-ordered frames -> pcap file + labels.

Every call yields its frames already in time order; a k-way heap merge
interleaves them, so memory stays bounded by the number of calls, not
packets, and the output is a pure function of (scenario, seed, options).
"""

import heapq
import random
from collections.abc import Iterator
from pathlib import Path

from callqual.simulator.call_flow import SOURCES_PER_CALL, CallArtifacts, build_call, build_transaction
from callqual.simulator.labels import SimulationLabels
from callqual.simulator.malformed import build_malformed
from callqual.simulator.pcap_writer import PcapWriter, TimedFrame
from callqual.simulator.scenarios import SCENARIOS, OptionValue
from callqual.simulator.spec import ScenarioCalls


def simulate(scenario: str, out_path: Path, seed: int = 1, **options: object) -> SimulationLabels:
    """Writes the scenario's capture to ``out_path`` and returns its labels.

    Raises ``ValueError`` for an unknown scenario or option.
    """
    try:
        definition = SCENARIOS[scenario]
    except KeyError:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(sorted(SCENARIOS))})") from None
    resolved = definition.resolve(options)
    base = f"{scenario}/{seed}"
    specs = definition.build(random.Random(base), resolved)
    return write_capture(
        specs, out_path, base=base, scenario=scenario, seed=seed, epoch=definition.epoch, options=resolved
    )


def write_capture(
    specs: ScenarioCalls,
    out_path: Path,
    *,
    base: str,
    scenario: str,
    seed: int,
    epoch: int,
    options: dict[str, OptionValue] | None = None,
) -> SimulationLabels:
    """Writes the packets of ``specs`` to ``out_path``; ``base`` seeds every call (``{base}/call{n}``).

    Split from ``simulate`` so a test can capture a hand-picked subset of a
    scenario's specs (a few calls of a day) without generating the rest.
    """
    epoch_us = epoch * 1_000_000

    artifacts: list[CallArtifacts] = []
    source = 0
    for n, call in enumerate(specs.calls):
        artifacts.append(build_call(call, seed=f"{base}/call{n}", epoch_us=epoch_us, source=source))
        source += SOURCES_PER_CALL
    for n, transaction in enumerate(specs.transactions):
        artifacts.append(
            build_transaction(transaction, seed=f"{base}/tx{n}", epoch_us=epoch_us, source=source)
        )
        source += 1
    for n, datagram in enumerate(specs.malformed):
        artifacts.append(build_malformed(datagram, seed=f"{base}/bad{n}", epoch_us=epoch_us, source=source))
        source += 1

    sources: list[Iterator[TimedFrame]] = [src for art in artifacts for src in art.sources]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with PcapWriter(out_path) as writer:
        writer.write_many(heapq.merge(*sources))
        packets = writer.packets

    labels = sorted((art.label for art in artifacts), key=lambda label: (label.start_ts, label.call_id))
    return SimulationLabels(
        scenario=scenario,
        seed=seed,
        options=dict(options or {}),
        epoch=epoch,
        packets=packets,
        sip_packets=sum(art.sip_packets for art in artifacts),
        rtp_packets=sum(stream.captured for art in artifacts for stream in art.label.streams),
        rtcp_packets=sum(art.rtcp_packets for art in artifacts),
        calls=labels,
    )
