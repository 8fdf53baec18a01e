"""Live capture: the same analysis as the file reader, and capture loss marked as such.

The peers are real: SIPp places calls with RTP across a veth pair into a
network namespace this test creates (loopback when namespaces are not
available), our source captures the interface live while tcpdump writes the
same traffic to a pcap, and the live result must equal ``analyze_file`` on
tcpdump's file. Capture loss is forced with a tiny kernel ring and queue and
a tcpreplay burst. The pipeline reads the capture in RecordBatches (the
collector's numpy chunk path); the batches must hold exactly the frames the
per-frame view gives, with the losses between them in the same places.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pcapy
import pytest

import callqual.collector.capture.live as live_module
from callqual.collector.capture.capture_queue import CaptureQueue
from callqual.collector.capture.live import CaptureLoss, LiveCapture, LiveCaptureError, default_bpf
from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.packet import Frame, RecordBatch
from callqual.pipeline.embedded import analyze_file
from callqual.pipeline.live import analyze_live
from callqual.schemas import AnalysisReport, AnyEvent, RtpStreamReport
from callqual.simulator import simulate

# -- pure parts -----------------------------------------------------------------------------------


def test_default_filter_compiles_for_ethernet_and_cooked_links() -> None:
    pcapy.compile(pcapy.DLT_EN10MB, 65535, default_bpf(), 1, 0)
    pcapy.compile(pcapy.DLT_LINUX_SLL, 65535, default_bpf(vlan=False), 1, 0)
    narrow = default_bpf(sip_ports=[5060], rtp_ports=(10000, 20000), noise_ports=[])
    assert "portrange 10000-20000" in narrow
    assert "not (" not in narrow
    pcapy.compile(pcapy.DLT_EN10MB, 65535, narrow, 1, 0)


def test_capture_loss_marks_live_streams_unreliable_and_counts(tmp_path: Path) -> None:
    """Streams live around the loss window are marked; streams that ended before it are not."""
    pcap = tmp_path / "load.pcap"
    simulate("load", pcap, calls=6, duration=4)
    reports: list[RtpStreamReport] = []

    def emit(ev: AnyEvent) -> None:
        if isinstance(ev, RtpStreamReport) and ev.final:
            reports.append(ev)

    collector = Collector(emit)
    with open_capture(pcap) as capture:
        frames = list(capture)
    half = len(frames) // 2
    collector.run(frames[:half])
    loss_ts = frames[half - 1].ts
    collector.note_capture_loss(loss_ts, 7)
    collector.note_capture_loss(loss_ts, 3, "capture.queue", since=loss_ts - 0.5)
    collector.run(frames[half:])
    collector.finish()
    assert collector.dropped["capture.kernel"] == 7
    assert collector.dropped["capture.queue"] == 3
    assert collector.all_dropped()["capture.kernel"] == 7
    live_then = [r for r in reports if r.first_ts <= loss_ts <= r.last_ts]
    assert live_then
    assert all(r.unreliable for r in live_then)
    after = [r for r in reports if r.first_ts > loss_ts + 0.1]
    assert not any(r.unreliable for r in after)


def test_missing_interface_is_a_clear_error() -> None:
    with pytest.raises(LiveCaptureError, match="no-such-if0"):
        LiveCapture("no-such-if0").open()


# -- real peers -----------------------------------------------------------------------------------

SIPP_AUDIO = Path("/usr/share/sip-tester/g711a.pcap")  # shipped by Debian's sip-tester

UAC_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uac with g711a audio">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: live capture test
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><exec play_pcap_audio="AUDIO"/></action></nop>
  <pause milliseconds="7500"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


@dataclass(frozen=True)
class Link:
    """Where the peers talk: the capture interface, the two addresses, and how to run the far side."""

    interface: str
    near_ip: str  #: this namespace (UAC, tcpreplay)
    far_ip: str  #: the peer namespace (UAS)
    far_prefix: tuple[str, ...]  #: command prefix that runs a program on the far side

    def far(self, *cmd: str) -> list[str]:
        return [*self.far_prefix, *cmd]

    def replay(self, pcap: Path, *rate: str) -> None:
        """tcpreplay ``pcap`` onto the capture interface at ``rate`` (``--pps N``, ``--topspeed``)."""
        done = subprocess.run(
            ["tcpreplay", "-i", self.interface, *rate, str(pcap)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)


@pytest.fixture
def link() -> Iterator[Link]:
    """A veth pair whose far end is in a fresh network namespace; loopback if namespaces fail."""
    tag = f"{os.getpid() % 100000}"
    ns, near, far = f"cqlive{tag}", f"cqa{tag}", f"cqb{tag}"
    net = 200 + os.getpid() % 50  # 10.<net>.77.0/24 on our own veth only
    near_ip, far_ip = f"10.{net}.77.1", f"10.{net}.77.2"
    if _ip("netns", "add", ns).returncode != 0:
        yield Link("lo", "127.0.0.1", "127.0.0.1", ())
        return
    try:
        steps = [
            ("link", "add", near, "type", "veth", "peer", "name", far),
            ("link", "set", far, "netns", ns),
            ("addr", "add", f"{near_ip}/24", "dev", near),
            ("link", "set", near, "up"),
            ("-n", ns, "addr", "add", f"{far_ip}/24", "dev", far),
            ("-n", ns, "link", "set", far, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield Link(near, near_ip, far_ip, ("ip", "netns", "exec", ns))
    finally:
        _ip("link", "del", near)
        _ip("netns", "del", ns)


class Tcpdump:
    """tcpdump writing the interface's traffic to a pcap: the reference for the live result."""

    def __init__(self, interface: str, bpf: str, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", interface, "-U", "-s", "0", "-B", "65536", "-w", str(out), bpf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "tcpdump: listening on ...": the filter is in place
        assert "listening on" in line, line

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def chunk_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the RecordBatches live captures hand collectors from now on (their numpy chunk path).

    Counted where the live source hands them over (``Collector.run`` runs every RecordBatch a
    source offers through the chunk path): the collector itself may be compiled (mypyc), and a
    compiled class's methods cannot be patched.
    """
    sizes: list[int] = []
    record_batches = live_module.LiveFrames.record_batches

    def counting(self: live_module.LiveFrames) -> Iterator[RecordBatch]:
        for batch in record_batches(self):
            sizes.append(len(batch))
            yield batch

    monkeypatch.setattr(live_module.LiveFrames, "record_batches", counting)
    return sizes


def _run_live_in_background(capture: LiveCapture) -> tuple[list[AnalysisReport], threading.Thread]:
    result: list[AnalysisReport] = []
    capture.open()
    thread = threading.Thread(target=lambda: result.append(analyze_live(capture)), daemon=True)
    thread.start()
    return result, thread


def _differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two report documents differ; floats within 50 (ms or s) count as equal.

    Each packet socket gets its own kernel timestamp, so tcpdump's and our
    timestamps of one packet differ by a few microseconds; every float in a
    report (times, deltas, jitter, MOS) moves by about that much. Everything
    else (calls, statuses, streams, packet and loss counts, frame numbers)
    must be identical.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} != {len(b)} items"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 0.05 else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.slow
def test_live_capture_of_sipp_calls_equals_analysis_of_tcpdump_file(
    link: Link, tmp_path: Path, chunk_runs: list[int]
) -> None:
    assert shutil.which("sipp") and shutil.which("tcpdump"), "run ./scripts/setup (sip-tester, tcpdump)"
    assert SIPP_AUDIO.exists(), "Debian's sip-tester ships g711a.pcap"
    scenario = tmp_path / "uac.xml"
    scenario.write_text(UAC_SCENARIO.replace("AUDIO", str(SIPP_AUDIO)), encoding="utf-8")
    live = LiveCapture(link.interface, timeout_ms=10)
    result, thread = _run_live_in_background(live)
    assert live.bpf is not None
    dump = Tcpdump(link.interface, live.bpf, tmp_path / "reference.pcap")
    uas = subprocess.Popen(
        link.far(
            *("sipp", "-sn", "uas", "-i", link.far_ip, "-p", "5060", "-mi", link.far_ip, "-mp", "16000"),
            *("-rtp_echo", "-nostdin", "-timeout", "60s"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        time.sleep(0.5)
        uac = subprocess.run(
            [
                *("sipp", f"{link.far_ip}:5060", "-sf", str(scenario), "-i", link.near_ip, "-p", "5070"),
                *("-mi", link.near_ip, "-mp", "18000", "-m", "2", "-l", "1", "-r", "1"),
                *("-nostdin", "-timeout", "60s", "-trace_err"),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=tmp_path,
            check=False,
        )
        assert uac.returncode == 0, uac.stdout[-2000:] + uac.stderr[-2000:]
        time.sleep(1.0)  # the last packets reach both captures
    finally:
        uas.terminate()
        uas.wait(timeout=10)
        live.stop()
        thread.join(timeout=30)
        dump.stop()
    assert result, "the live capture did not finish"
    live_report = result[0]
    assert sum(chunk_runs) == live_report.summary.frames  # every frame went through the chunk path
    reference = analyze_file(dump.out)

    calls = live_report.calls
    assert len(calls) == 2
    assert all(c.final_status == 200 for c in calls)
    assert len(live_report.streams) >= 2  # UAC's audio and the UAS's echo of it, per call
    assert sum(s.packets for s in live_report.streams) > 2 * 200
    assert live_report.summary.dropped.get("capture.kernel", 0) == 0
    assert live.stats().dropped == 0
    live_doc, reference_doc = live_report.model_dump(), reference.model_dump()
    live_doc["summary"].pop("source")
    reference_doc["summary"].pop("source")
    assert _differences(live_doc, reference_doc) == []


@pytest.mark.slow
def test_capture_drops_are_counted_and_mark_live_streams_unreliable(
    link: Link, tmp_path: Path, chunk_runs: list[int]
) -> None:
    """A tiny kernel ring and queue under a tcpreplay burst: drops counted, streams marked."""
    assert shutil.which("tcpreplay"), "run ./scripts/setup (tcpreplay)"
    pcap = tmp_path / "load.pcap"
    simulate("load", pcap, calls=20, duration=5)
    with open_capture(pcap) as capture:
        sent = sum(1 for _ in capture)
    live = LiveCapture(link.interface, buffer_bytes=32 * 1024, queue_frames=256, batch=64)
    result, thread = _run_live_in_background(live)
    try:
        time.sleep(0.3)
        link.replay(pcap, "--topspeed")
        time.sleep(0.5)
    finally:
        live.stop()
        thread.join(timeout=60)
    assert result, "the live capture did not finish"
    report = result[0]
    stats = live.stats()
    dropped = report.summary.dropped
    lost = stats.dropped + stats.ifdropped + stats.queue_dropped
    assert lost > 0, stats
    assert dropped.get("capture.kernel", 0) == stats.dropped
    assert dropped.get("capture.interface", 0) == stats.ifdropped
    assert dropped.get("capture.queue", 0) == stats.queue_dropped
    assert report.summary.frames == stats.captured - stats.queue_dropped
    assert sum(chunk_runs) == report.summary.frames  # every frame went through the chunk path
    assert report.summary.frames + lost >= sent  # nothing vanished uncounted
    marked = [s for s in report.streams if s.unreliable]
    assert marked, "streams live during the drops must be marked unreliable"
    assert any(c.unreliable for c in report.calls)


@pytest.mark.slow
@pytest.mark.parametrize("split", [(), ("--split",)], ids=["one-process", "split"])
def test_cli_live_quick_look_stops_on_sigterm_and_flushes(
    link: Link, tmp_path: Path, split: tuple[str, ...]
) -> None:
    """``callqual analyze --interface [--split]``: SIGTERM ends the capture, the report still covers it."""
    pcap = tmp_path / "load.pcap"
    simulate("load", pcap, calls=3, duration=2)
    reference = analyze_file(pcap)
    out = tmp_path / "live.json"
    cli = subprocess.Popen(
        [
            *(sys.executable, "-m", "callqual", "analyze", "--interface", link.interface, *split),
            *("--format", "json", "--no-progress", "-o", str(out)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.stderr is not None
        assert "capturing on" in cli.stderr.readline()  # the capture is open, the handler installed
        link.replay(pcap, "--pps", "2000")
        time.sleep(0.5)
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    report = AnalysisReport.model_validate_json(out.read_text(encoding="utf-8"))
    assert report.summary.source == f"live:{link.interface}"
    assert report.summary.frames == reference.summary.frames
    assert report.summary.sip_messages == reference.summary.sip_messages
    assert sorted((c.call_id, c.final_status) for c in report.calls) == sorted(
        (c.call_id, c.final_status) for c in reference.calls
    )
    assert sorted(s.packets for s in report.streams) == sorted(s.packets for s in reference.streams)


class _RecordingQueue(CaptureQueue):
    """A capture queue that keeps what its consumer took, to replay it to another."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        super().__init__(max_frames, max_bytes)
        self.taken: list[object] = []

    def take(self, max_frames: int, max_bytes: int) -> object:
        item = super().take(max_frames, max_bytes)
        self.taken.append(item)
        return item


def _recording(interface: str, **settings: int) -> tuple[LiveCapture, _RecordingQueue]:
    live = LiveCapture(interface, **settings)  # type: ignore[arg-type]
    live.queue = _RecordingQueue(live.queue_frames, live.queue_bytes)
    return live, live.queue


def _replay_of(live: LiveCapture, taken: list[object]) -> LiveCapture:
    """A capture (not opened) whose queue holds, raw, exactly what ``live``'s consumer took."""
    clone = LiveCapture(live.interface)
    clone.linktype = live.linktype
    for item in taken:
        clone.queue.put(item if isinstance(item, list) else [item])
    return clone


@pytest.fixture(scope="module")
def small_load(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    pcap = tmp_path_factory.mktemp("live") / "load.pcap"
    simulate("load", pcap, calls=8, duration=2)
    with open_capture(pcap) as capture:
        return pcap, sum(1 for _ in capture)


@pytest.mark.slow
@pytest.mark.parametrize("snaplen", [262144, 96], ids=["next_batch", "dispatch-cut"])
def test_batches_hold_exactly_the_frames_and_losses_of_the_frame_view(
    link: Link, small_load: tuple[Path, int], snaplen: int
) -> None:
    """Real traffic, a slow batch consumer and a small queue: merged batches, real queue drops.

    The raw batches the batch consumer took are then given to the per-frame
    consumer: the same frames (number, time to the bit, bytes, wire length)
    must come out, and every loss between the same two frames.
    """
    pcap, sent = small_load
    live, recorded = _recording(link.interface, snaplen=snaplen, batch=32, queue_frames=256, merge_frames=200)
    live.open()
    got: list[Frame | CaptureLoss] = []
    sizes: list[int] = []

    def consume() -> None:
        source = live.frames(got.append)
        for batch in source.record_batches():
            sizes.append(len(batch))
            got.extend(batch.frame(i) for i in range(len(batch)))
            time.sleep(0.05)  # slower than the replay: raw batches pile up (merged) and overflow

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    try:
        time.sleep(0.3)
        link.replay(pcap, "--pps", "8000")
        time.sleep(0.3)
    finally:
        live.stop()
        worker.join(timeout=60)
    assert not worker.is_alive()
    stats = live.stats()
    frames = [f for f in got if isinstance(f, Frame)]
    losses = [x for x in got if isinstance(x, CaptureLoss)]
    # Merged (raw batches are at most 32 frames) but bounded, nothing lost uncounted.
    assert max(sizes) > 32
    assert max(sizes) <= 200
    assert stats.queue_dropped > 0
    assert sum(x.dropped for x in losses) == stats.queue_dropped + stats.dropped + stats.ifdropped
    assert len(frames) == stats.captured - stats.queue_dropped
    assert len(frames) + sum(x.dropped for x in losses) >= sent
    losses_then_frames = [i for i in range(1, len(got)) if isinstance(got[i - 1], CaptureLoss)]
    assert any(isinstance(got[i], Frame) for i in losses_then_frames), "a loss between two batches"
    assert [f.number for f in frames] == list(range(1, len(frames) + 1))
    if snaplen < 65535:
        assert any(f.orig_len > len(f.data) for f in frames)  # cut by the snaplen, wire length kept

    replayed: list[Frame | CaptureLoss] = []
    per_frame = _replay_of(live, recorded.taken)
    replayed.extend(per_frame.frames(replayed.append))
    assert len(replayed) == len(got)
    for a, b in zip(got, replayed, strict=True):
        assert a == b
        if isinstance(a, Frame) and isinstance(b, Frame):
            assert struct.pack("<d", a.ts) == struct.pack("<d", b.ts)


def test_batch_view_resumes_numbering_and_ends_every_later_consumer() -> None:
    """An interrupted consumer's successor continues the numbering; after the end, every later one ends."""
    live = LiveCapture("unused0", merge_frames=4)
    live.linktype = pcapy.DLT_EN10MB
    packets = [bytes([i]) * (60 + i) for i in range(10)]
    for lo, hi in ((0, 4), (4, 7), (7, 10)):  # three raw next_batch results: 4, 3 and 3 frames
        part = packets[lo:hi]
        offsets = [sum(len(p) for p in part[:k]) for k in range(len(part))]
        meta = b"".join(
            struct.pack("=IIII", 1_700_000_000 + lo + k, 999_999 - k, off, len(p))
            for k, (off, p) in enumerate(zip(offsets, part, strict=True))
        )
        live.queue.offer((b"".join(part), meta), len(part), len(meta) + sum(map(len, part)))
    live.queue.end()  # what the capture thread does when it ends

    first = next(iter(live.frames().record_batches()))  # then interrupted
    assert (first.first_number, len(first)) == (1, 4)  # 4 + 3 would exceed merge_frames
    second = next(iter(live.frames().record_batches()))
    assert (second.first_number, len(second)) == (5, 3)
    rest = list(live.frames())  # the per-frame view continues too
    assert [f.number for f in rest] == [8, 9, 10]
    batched = [b.frame(i) for b in (first, second) for i in range(len(b))]
    assert [f.data for f in [*batched, *rest]] == packets
    assert [f.orig_len for f in [*batched, *rest]] == [len(p) for p in packets]
    assert [f.ts for f in batched[:2]] == [1_700_000_000 + 999_999 * 1e-6, 1_700_000_001 + 999_998 * 1e-6]
    assert list(live.frames()) == []
    assert list(live.frames().record_batches()) == []
