"""The load scenario's size, tshark's view of it, and byte-for-byte reproducibility."""

import hashlib
from pathlib import Path

import pytest

from callqual.simulator import SimulationLabels, simulate
from tests.tshark_reference import fields, requires_tshark, rtp_streams

CALLS = 5
DURATION = 5


@pytest.fixture(scope="module")
def small_load(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationLabels]:
    path = tmp_path_factory.mktemp("load") / "load.pcap"
    return path, simulate("load", path, seed=3, calls=CALLS, duration=DURATION)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_packet_count(small_load: tuple[Path, SimulationLabels]) -> None:
    _, labels = small_load
    assert len(labels.calls) == CALLS
    assert labels.sip_packets == 7 * CALLS  # INVITE 100 180 200 ACK BYE 200
    # Each direction sends every 20 ms from the 200 OK (caller: once it got it) to the BYE.
    for call in labels.calls:
        assert [s.lost for s in call.streams] == [0, 0]
        for stream in call.streams:
            assert 50 * DURATION - 4 <= stream.sent <= 50 * DURATION
    assert labels.rtp_packets == sum(s.captured for c in labels.calls for s in c.streams)
    assert labels.packets == labels.sip_packets + labels.rtp_packets + labels.rtcp_packets


@requires_tshark
@pytest.mark.tshark
def test_load_read_by_tshark(small_load: tuple[Path, SimulationLabels]) -> None:
    path, labels = small_load
    assert len(fields(path, "frame", ["frame.number"])) == labels.packets
    assert fields(path, "_ws.malformed || _ws.expert.severity >= 8388608", ["frame.number"]) == []
    streams = rtp_streams(path)
    assert len(streams) == 2 * CALLS
    assert sum(s.packets for s in streams.values()) == labels.rtp_packets
    assert all(s.lost == 0 and s.payload == "g711U" for s in streams.values())
    assert len(fields(path, "sip.Status-Code == 200", ["sip.Call-ID"])) == 2 * CALLS


def test_same_seed_gives_identical_bytes_and_labels(tmp_path: Path) -> None:
    first = simulate("demo", tmp_path / "a.pcap", seed=11)
    second = simulate("demo", tmp_path / "b.pcap", seed=11)
    assert _digest(tmp_path / "a.pcap") == _digest(tmp_path / "b.pcap")
    assert first == second
    other = simulate("demo", tmp_path / "c.pcap", seed=12)
    assert _digest(tmp_path / "c.pcap") != _digest(tmp_path / "a.pcap")
    assert {c.call_id for c in other.calls}.isdisjoint({c.call_id for c in first.calls})


def test_load_is_reproducible(tmp_path: Path) -> None:
    simulate("load", tmp_path / "a.pcap", seed=5, calls=3, duration=2)
    simulate("load", tmp_path / "b.pcap", seed=5, calls=3, duration=2)
    assert _digest(tmp_path / "a.pcap") == _digest(tmp_path / "b.pcap")


def test_options_are_validated_and_coerced(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        simulate("nope", tmp_path / "x.pcap")
    with pytest.raises(ValueError, match="no option"):
        simulate("demo", tmp_path / "x.pcap", calls=3)
    labels = simulate("load", tmp_path / "x.pcap", calls="2", duration="1.5", rtcp="false")
    assert len(labels.calls) == 2
    assert labels.rtcp_packets == 0
    assert labels.options == {"calls": 2, "duration": 1.5, "codec": "PCMU", "rtcp": False}


def test_clean_scenario_is_all_ok(tmp_path: Path) -> None:
    labels = simulate("clean", tmp_path / "clean.pcap", calls=4, duration=3)
    assert [c.category for c in labels.calls] == ["ok"] * 4
    assert all(not c.faults for c in labels.calls)
    assert {c.codec for c in labels.calls} == {"PCMU", "PCMA", "G729", "opus"}
