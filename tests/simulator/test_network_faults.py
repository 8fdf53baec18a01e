"""The day's codec mismatches, NATted SDP and malformed SIP: labelled, and caught by their rules only.

The full day takes seconds to simulate and analyse, so the end-to-end test
captures just the new faults' specs (plus a few normal calls) of a small
day, through the same engine.
"""

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from callqual.cli.evaluate import FAULT_RULES, evaluate
from callqual.cli.train import run_capture
from callqual.collector.errors import SipParseError
from callqual.collector.sip.message import parse_sip
from callqual.detector.rules.sdp_private_address import is_private, is_public
from callqual.simulator import malformed
from callqual.simulator.engine import write_capture
from callqual.simulator.scenarios import SCENARIOS
from callqual.simulator.sip_messages import SipParty
from callqual.simulator.spec import CallSpec, MalformedSpec, ScenarioCalls, call_faults

NEW_FAULTS = {"codec_mismatch", "sdp_private_address", "malformed_sip"}
SEED = 11


def _day(seed: int = SEED, calls: int = 40) -> ScenarioCalls:
    day = SCENARIOS["day"]
    return day.build(random.Random(f"day/{seed}"), day.resolve({"calls": calls}))


def test_new_faults_map_to_their_rules() -> None:
    for fault in NEW_FAULTS:
        assert FAULT_RULES[fault] == (fault,)


def test_the_day_has_each_new_fault_and_normal_calls_have_none() -> None:
    specs = _day()
    mismatched = [c for c in specs.calls if "codec_mismatch" in call_faults(c)]
    natted = [c for c in specs.calls if "sdp_private_address" in call_faults(c)]
    assert len(mismatched) == len(natted) == 2
    for c in mismatched:
        assert c.rtp_codec is not None and c.rtp_codec != c.codec and c.final_status == 200
    for c in natted:
        assert is_public(c.caller.ip) and is_private(c.caller.sdp_ip)
    others = [c for c in specs.calls if c not in mismatched and c not in natted]
    assert all(not NEW_FAULTS & set(call_faults(c)) for c in others)
    assert all(c.rtp_codec is None and c.caller.sdp_ip is None for c in others)
    per_source = Counter(m.client.ip for m in specs.malformed)
    assert set(per_source) == {"203.0.113.90", "198.51.100.140"}
    assert min(per_source.values()) >= 10
    assert {m.kind for m in specs.malformed} == set(malformed.KINDS)


def test_demo_has_none_of_the_new_faults(tmp_path: Path) -> None:
    demo = SCENARIOS["demo"].build(random.Random("demo/1"), {})
    assert not demo.malformed
    assert all(not NEW_FAULTS & set(call_faults(c)) for c in demo.calls)


@pytest.mark.parametrize("kind", sorted(malformed.KINDS))
def test_every_malformed_kind_is_reported_by_the_collector_parser(kind: str) -> None:
    """Each kind either cannot be parsed or parses with an anomaly: both are MalformedSipEvents."""
    pbx = SipParty("100", "PBX", "10.0.0.5", "voip.example.net", "Asterisk PBX 20.5.0")
    fuzzer = SipParty("fuzz", "fuzz", "203.0.113.90", "voip.example.net", "fuzzer", port=5099)
    for n in range(20):
        spec = MalformedSpec(0.0, fuzzer, pbx, kind)
        art = malformed.build_malformed(spec, seed=f"t/{kind}/{n}", epoch_us=0, source=0)
        frames = list(art.sources[0])
        assert len(frames) == 1 and art.label.faults == ["malformed_sip"]
        payload = frames[0][3][14 + 20 + 8 :]
        try:
            msg = parse_sip(payload)
        except SipParseError:
            assert malformed.KINDS[kind] == "INVITE"  # what cannot be parsed never makes a call
        else:
            assert msg.anomalies, (kind, payload[:120])
        if kind == "junk_header":
            assert len(payload) > 1024


def test_documentation_addresses_count_as_public() -> None:
    """RFC 5737 addresses stand for the Internet in captures; is_global alone would miss every NATted call."""
    for ip in ("203.0.113.5", "198.51.100.120", "192.0.2.10", "2001:db8::1", "8.8.4.4"):
        assert is_public(ip), ip
    for ip in ("10.1.2.3", "192.168.1.2", "100.64.0.1", "127.0.0.1", "169.254.1.1", "not-an-ip"):
        assert not is_public(ip), ip


def test_rules_fire_on_the_new_faults_and_nothing_else_does(tmp_path: Path) -> None:
    specs = _day()
    new_calls = [c for c in specs.calls if NEW_FAULTS & set(call_faults(c))]
    normal: list[CallSpec] = [c for c in specs.calls if c.description == "normal call"][:10]
    subset = ScenarioCalls(calls=[*normal, *new_calls], malformed=specs.malformed)
    path = tmp_path / "faults.pcap"
    labels = write_capture(subset, path, base=f"day/{SEED}", scenario="day", seed=SEED, epoch=1_709_510_400)
    report = run_capture(path)
    assert report is not None
    scores = {s.rule: s for s in evaluate(report, labels).rules}
    assert scores["codec_mismatch"].true_positives == 2
    assert scores["sdp_private_address"].true_positives == 2
    assert scores["malformed_sip"].true_positives == 2
    for rule in NEW_FAULTS:
        assert scores[rule].f1 == 1.0, scores[rule]
    # No rule fires on anything else here: the normal calls stay clean, and the new faults raise
    # only their own rule (the NATted calls' media still flows, the mismatched codec keeps its MOS).
    for score in scores.values():
        assert score.false_positives == 0, score
    fired = Counter(a.rule for a in report.alerts)
    assert set(fired) == NEW_FAULTS, fired


def test_post_dial_delay_label_counts_the_invite_retransmissions() -> None:
    """3 retransmissions wait 3.5 s before the PDD the spec names: 1.9 s more is a long PDD for the caller."""
    specs = _day()
    call = specs.calls[0]
    assert "long_post_dial_delay" not in call_faults(replace(call, pdd_s=1.9, invite_retransmissions=2))
    assert "long_post_dial_delay" in call_faults(replace(call, pdd_s=1.9, invite_retransmissions=3))
