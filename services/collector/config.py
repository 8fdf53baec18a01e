"""Tunables of the collector core (pure). The collector service wraps them in its settings."""

from pydantic import BaseModel, ConfigDict, Field


class CollectorConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: UDP/TCP ports on which a payload that does not look like SIP is still parsed as SIP,
    #: so that a mangled message on the signalling port is counted as malformed, not ignored.
    sip_ports: frozenset[int] = Field(default=frozenset({5060, 5061, 5080, 5062}))
    #: Track RTP that no SDP announced (off by default, as in Wireshark: it is a guess).
    heuristic_rtp: bool = False
    #: Capture seconds between interval reports of a live stream (what Kafka consumers see of a
    #: call still in progress; the detector's idle timer is minutes). Every report applies the
    #: stream's queued packets, so a shorter interval costs throughput: 10 s instead of 5 s takes
    #: about a fifth off the collector's CPU time on the 200-call benchmark.
    report_interval_s: float = 10.0
    #: Capture seconds between reports of a call whose media flows one way only (a direction
    #: quiet, or not started) or with a stream not yet reported: what brings a mid-call one-way
    #: alert within ~2 s of the detector's wait instead of up to ``report_interval_s`` after it
    #: (``media/quiet_probe.py``; counted as ``rtp.quiet_probe_reports``). 0 turns it off.
    quiet_report_interval_s: float = 2.0
    #: After its call ended (BYE / final failure), a stream idle this long is finished.
    ended_call_grace_s: float = 2.0
    #: A stream of a live (or unknown) call idle this long is finished. Long, so that silence
    #: suppression does not split one stream into two (Wireshark never splits streams).
    stream_idle_timeout_s: float = 60.0
    #: Carry each SIP message's exact bytes in its event (``raw``): the call store and the UI
    #: show them. ``analyze`` without ``--store`` leaves them out: its report never reads them,
    #: and they were half the bytes its split hands over (bench/RESULTS.md, session 8).
    keep_sip_raw: bool = True
    max_streams: int = 100_000
    max_media_bindings: int = 200_000
    max_tracked_calls: int = 200_000
