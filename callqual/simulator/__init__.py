"""``callqual simulate``: labelled, realistic VoIP captures generated from a seed.

The project's own sample data: classic pcap files (Ethernet/IPv4/UDP, SIP,
SDP, RTP, RTCP) with a JSON ground truth of what was injected into every
call, byte-identical for the same scenario, seed and options.
"""

from callqual.simulator.engine import simulate
from callqual.simulator.labels import (
    CallLabel,
    InjectedParams,
    SimulationLabels,
    StreamLabel,
    read_labels,
    write_labels,
)
from callqual.simulator.scenarios import SCENARIOS, Scenario

__all__ = [
    "SCENARIOS",
    "CallLabel",
    "InjectedParams",
    "Scenario",
    "SimulationLabels",
    "StreamLabel",
    "read_labels",
    "simulate",
    "write_labels",
]
