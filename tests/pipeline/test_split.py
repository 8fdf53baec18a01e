"""``analyze --split`` (collector in a child process) must report exactly what the one-process run reports."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.split import MIN_SPLIT_BYTES, SplitPipelineError, run_split
from callqual.schemas import AnalysisReport
from callqual.simulator import simulate
from tests.collector.callcraft import CallCapture, sdp, sip
from tests.pipeline.split_reports import json_report
from tests.shared_captures import PCAPS

_CAPTURES = sorted(
    str(p.relative_to(PCAPS)) for p in PCAPS.glob("*/*") if p.suffix in (".pcap", ".pcapng", ".cap")
)


def _report(capture: Path, tmp_path: Path, fmt: str, *split: str) -> tuple[int, bytes]:
    out = tmp_path / f"report-{fmt}{''.join(split)}"
    code = main(["analyze", str(capture), "--format", fmt, "--no-progress", "-o", str(out), *split])
    return code, out.read_bytes()


@pytest.mark.parametrize("name", _CAPTURES)
def test_split_report_is_byte_identical_on_every_shared_capture(name: str, tmp_path: Path) -> None:
    one = _report(PCAPS / name, tmp_path, "json")
    assert _report(PCAPS / name, tmp_path, "json", "--split") == one
    report = AnalysisReport.model_validate_json(one[1])
    assert report.summary.frames > 0
    # analyze leaves each SIP message's raw bytes out (keep_sip_raw): no report reads them.
    with open_capture(PCAPS / name) as capture:
        whole = EmbeddedPipeline()
        whole.run(capture)
        whole.finish()
        assert report == whole.report(str(PCAPS / name), capture.truncated, capture.errors)


def test_shared_captures_cover_media_signalling_and_alerts() -> None:
    """The parametrised comparison above is only worth something if the captures hold all three."""
    assert len(_CAPTURES) > 30
    whole = [
        AnalysisReport.model_validate(_in_process(PCAPS / n).model_dump())
        for n in ("rtp-pcap/SIP_DTMF2.pcap", "rtp-pcap/aaa.pcap")
    ]
    assert sum(r.summary.streams for r in whole) > 0
    assert sum(r.summary.calls for r in whole) > 1
    assert sum(r.summary.alerts for r in whole) > 0


def _in_process(path: Path) -> AnalysisReport:
    pipeline = EmbeddedPipeline()
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
        return pipeline.report(str(path), capture.truncated, capture.errors)


def test_text_report_and_a_truncated_capture(tmp_path: Path) -> None:
    data = (PCAPS / "rtp-pcap/sip-rtp-g722.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    one = _report(cut, tmp_path, "text")
    assert one[0] == 4  # truncated: what was readable is analysed
    assert _report(cut, tmp_path, "text", "--split") == one
    assert b"CALLS (1" in one[1]


def test_a_failing_collector_is_an_error_with_its_traceback() -> None:
    pipeline = EmbeddedPipeline()
    with open_capture(PCAPS / "rtp-pcap/sip-rtp-g722.pcap") as capture:
        capture.close()  # the child then reads from a closed file
        with pytest.raises(SplitPipelineError, match="collector process failed"):
            run_split(pipeline, capture)


def test_split_and_workers_do_not_combine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two ways to use more cores; asking for both is a usage error (exit 2), not a silent choice."""
    out = tmp_path / "both.json"
    args = ["analyze", str(PCAPS / "sipp/g711a.pcap"), "--no-progress", "-o", str(out)]
    code = main([*args, "--split", "--workers", "2"])
    assert code == 2
    assert "pick one" in capsys.readouterr().err
    assert not out.exists() or out.read_bytes() == b""


@pytest.mark.parametrize("scenario", ["load", "impaired"])
@pytest.mark.parametrize("compact", [True, False], ids=["json-kept", "models-kept"])
def test_simulated_scenarios_report_alike(tmp_path: Path, scenario: str, compact: bool) -> None:
    path = tmp_path / f"{scenario}.pcap"
    simulate(scenario, path, seed=5, duration=20.0, **({"calls": 16} if scenario == "load" else {}))
    one = json_report(path, split=False, compact=compact)
    assert json_report(path, split=True, compact=compact) == one
    assert one.count(b'"ssrc"') >= 10 and one.count(b'"call_id"') >= 10


def _invites(path: Path, calls: int) -> Path:
    """``calls`` INVITEs with SDP, one a millisecond: several MiB of events, more than the pipe holds."""
    capture = CallCapture()
    for n in range(calls):
        body = sdp("10.0.0.1", [("audio", 20000 + 2 * (n % 1000), "RTP/AVP", "0 8 96")])
        capture.add(
            n / 1000,
            ("10.0.0.1", 5060),
            ("10.0.0.2", 5060),
            sip("INVITE sip:bob@10.0.0.2 SIP/2.0", f"c{n}", "1 INVITE", body=body),
        )
    return capture.write(path)


@pytest.fixture(scope="module")
def invites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 INVITEs: ~9 MB, more than one 8 MiB read of the capture, ~20 MiB of events."""
    return _invites(tmp_path_factory.mktemp("split") / "invites.pcap", 20000)


def _collector_child() -> multiprocessing.process.BaseProcess:
    (child,) = [p for p in multiprocessing.active_children() if p.name == "callqual-collector"]
    return child


def test_a_collector_killed_mid_capture_is_an_error_not_a_hang(invites: Path) -> None:
    """SIGKILL (the OOM killer, say) after the first batch: what was sent is analysed, then an error."""
    pipeline = EmbeddedPipeline()
    seen: list[int] = []

    def kill_on_first_batch(bytes_read: int) -> None:
        if not seen:  # the child cannot have finished: a pipe holds 64 KiB, the events are ~20 MiB
            os.kill(_collector_child().pid, signal.SIGKILL)
        seen.append(bytes_read)

    with open_capture(invites) as capture, pytest.raises(SplitPipelineError, match=r"died \(exit code -9\)"):
        run_split(pipeline, capture, kill_on_first_batch)
    assert 1 <= len(seen) < 20000 // 512
    assert 0 < pipeline.sip_messages < 20000
    assert not multiprocessing.active_children()


def test_progress_follows_the_collector_process(invites: Path) -> None:
    seen: list[int] = []
    with open_capture(invites) as capture:
        run_split(EmbeddedPipeline(), capture, seen.append)
        size = capture.size
    assert len(seen) == -(-20000 // 512)
    assert seen == sorted(seen) and 0 < seen[0] < size and seen[-1] == size


def test_analyze_split_whose_collector_dies_exits_3_with_a_message(tmp_path: Path) -> None:
    """The CLI: the collector process killed -> exit 3 and one line saying so, no traceback, no hang."""
    path = _invites(tmp_path / "invites.pcap", 20000)
    cmd = [
        sys.executable,
        "-m",
        "callqual",
        "analyze",
        str(path),
        "--split",
        "--no-progress",
        "--format",
        "json",
    ]
    proc = subprocess.Popen([*cmd, "-o", str(tmp_path / "r.json")], stderr=subprocess.PIPE)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 120
    while True:  # catch the child with the parent stopped, so it cannot finish first
        assert time.monotonic() < deadline and proc.poll() is None
        os.kill(proc.pid, signal.SIGSTOP)
        kids = children.read_text().split()
        if kids:
            break
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.002)
    os.kill(int(kids[0]), signal.SIGKILL)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3
    assert "--split: the collector process died (exit code -9)" in err.decode()
    assert b"Traceback" not in err


_FORKS: list[int] = []
os.register_at_fork(after_in_parent=lambda: _FORKS.append(os.getpid()))


def _forks_of(args: list[str], env: dict[str, str] | None = None) -> tuple[int, int]:
    """(exit code, processes forked) of ``callqual analyze`` run here with ``args``."""
    before = len(_FORKS)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        code = main(["analyze", *args])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, len(_FORKS) - before


def test_a_capture_file_splits_by_default_on_two_cpus(invites: Path, tmp_path: Path) -> None:
    """This box has two CPUs: analyze forks its collector unless told not to, and reports the same."""
    assert len(os.sched_getaffinity(0)) >= 2
    outs = {name: tmp_path / f"{name}.json" for name in ("auto", "no", "env-no", "yes")}
    common = [str(invites), "--format", "json", "--no-progress", "-o"]
    assert _forks_of([*common, str(outs["auto"])]) == (0, 1)
    assert _forks_of([*common, str(outs["no"]), "--no-split"]) == (0, 0)
    assert _forks_of([*common, str(outs["env-no"])], {"CALLQUAL_SPLIT": "false"}) == (0, 0)
    assert _forks_of([*common, str(outs["yes"])], {"CALLQUAL_SPLIT": "true"}) == (0, 1)
    reports = {out.read_bytes() for out in outs.values()}
    assert len(reports) == 1 and b'"sip_messages": 20000' in reports.pop()


def test_a_small_capture_stays_in_one_process(tmp_path: Path) -> None:
    out = tmp_path / "small.json"
    small = PCAPS / "rtp-pcap/SIP_DTMF2.pcap"
    assert small.stat().st_size < MIN_SPLIT_BYTES
    assert _forks_of([str(small), "--format", "json", "--no-progress", "-o", str(out)]) == (0, 0)
    assert _forks_of([str(small), "--format", "json", "--no-progress", "-o", str(out), "--split"]) == (0, 1)


@pytest.mark.parametrize(
    ("cpus", "size", "workers", "expected"),
    [
        ({0, 1}, 1 << 20, 1, True),
        ({0}, 1 << 30, 1, False),
        ({0, 1}, (1 << 20) - 1, 1, False),
        ({0, 1}, 1 << 30, 2, False),
    ],
)
def test_when_splitting_pays(cpus: set[int], size: int, workers: int, expected: bool) -> None:
    """By the CPUs this process may run on (``taskset``, a container's cpuset), not the machine's count."""
    code = (
        f"import os; os.sched_setaffinity(0, {cpus!r}); from callqual.pipeline.split import split_pays; "
        f"print(split_pays({size}, {workers}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == str(expected)


def _store_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of a SQLite store, sorted (ids aside: the order rows were written)."""
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")]
        return {t: sorted(map(tuple, db.execute(f'select * from "{t}"')), key=repr) for t in tables}


def test_store_gets_the_same_rows_split_or_not(tmp_path: Path) -> None:
    """``--store`` writes from this process, fed by the child's events: the same rows either way."""
    path = tmp_path / "impaired.pcap"
    simulate("impaired", path, seed=7, duration=20.0)
    assert path.stat().st_size >= MIN_SPLIT_BYTES  # the default would split it too
    rows = []
    for flag in ("--split", "--no-split"):
        url = f"sqlite:///{tmp_path / f'calls{flag}.db'}"
        out = tmp_path / f"report{flag}.json"
        args = [str(path), "--store", url, "--format", "json", "--no-progress", "-o", str(out)]
        assert _forks_of([*args, flag]) == (0, 1 if flag == "--split" else 0)
        rows.append(_store_rows(url))
    assert rows[0] == rows[1]
    assert len(rows[0]["sip_messages"]) > 50 and len(rows[0]["calls"]) > 5
