"""Capture files in formats we do not read are named, with the command that converts them.

The files are written by Wireshark's own editcap from a shared capture; the
command the message suggests is then run as given and its output analysed.
"""

from __future__ import annotations

import bz2
import lzma
import shlex
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.collector.capture.other_formats import OTHER_FORMATS
from callqual.schemas import AnalysisReport
from tests.shared_captures import PCAPS

SOURCE = PCAPS / "rtp-pcap/sip-rtp-g722.pcap"

#: editcap -F name -> the format name our message gives
EDITCAP_WRITES = {
    "netmon2": "Microsoft Network Monitor 2.x capture",
    "netmon1": "Microsoft Network Monitor 1.x capture",
    "snoop": "Sun snoop capture (RFC 1761)",
    "ngsniffer": "Network General Sniffer (DOS) capture",
    "ngwsniffer_2_0": "NetXray / Sniffer (Windows) capture",
    "observer": "Viavi (Network Instruments) Observer capture",
    "visual": "Visual Networks traffic capture",
    "5views": "InfoVista 5View capture",
}
#: editcap 4.0 cannot read back the Observer file it writes ("bad record"), so that one is only named
NO_ROUND_TRIP = {"observer"}
#: btsnoop: editcap cannot write it from Ethernet, so its 16-byte header (version 1, HCI UART) by hand
BTSNOOP = b"btsnoop\0" + struct.pack("!II", 1, 1002)


def _analyze(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["analyze", str(path), "--format", "json", "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_format_in_the_table_is_tested() -> None:
    tested = {*EDITCAP_WRITES.values(), "Symbian btsnoop (Bluetooth HCI) capture"}
    assert {f.name for f in OTHER_FORMATS if f.convertible} == tested


@pytest.mark.parametrize("editcap_format", sorted(EDITCAP_WRITES))
def test_named_and_the_suggested_command_converts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], editcap_format: str
) -> None:
    other = tmp_path / "a call.cap"  # a space, as Windows file names have: the command quotes it
    subprocess.run(["editcap", "-F", editcap_format, str(SOURCE), str(other)], check=True, timeout=60)
    code, _, err = _analyze(other, capsys)
    assert code == 3
    assert f"a {EDITCAP_WRITES[editcap_format]}; convert it with: editcap -F pcap " in err
    command = err.split("convert it with: ", 1)[1].strip()
    if editcap_format in NO_ROUND_TRIP:
        return
    subprocess.run(shlex.split(command), cwd=tmp_path, check=True, timeout=60)
    code, out, _ = _analyze(tmp_path / "a call.pcap", capsys)
    assert code == 0
    converted = AnalysisReport.model_validate_json(out)
    code, out, _ = _analyze(SOURCE, capsys)
    original = AnalysisReport.model_validate_json(out)
    assert [(s.ssrc, s.packets) for s in converted.streams] == [(s.ssrc, s.packets) for s in original.streams]
    assert [c.call_id for c in converted.calls] == [c.call_id for c in original.calls]


def test_btsnoop_and_a_pcap_named_netmon_file_never_overwrite_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bt = tmp_path / "hci.log"
    bt.write_bytes(BTSNOOP)
    assert _analyze(bt, capsys)[0] == 3
    netmon_named_pcap = tmp_path / "call.pcap"
    subprocess.run(["editcap", "-F", "netmon2", str(SOURCE), str(netmon_named_pcap)], check=True, timeout=60)
    code, _, err = _analyze(netmon_named_pcap, capsys)
    assert code == 3 and err.rstrip().endswith(f"editcap -F pcap {netmon_named_pcap} call-converted.pcap")


def test_archives_say_unpack_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = SOURCE.read_bytes()
    (tmp_path / "a.pcap.bz2").write_bytes(bz2.compress(data))
    (tmp_path / "a.pcap.xz").write_bytes(lzma.compress(data))
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("a.pcap", data)
    for name, what in [("a.pcap.bz2", "bzip2"), ("a.pcap.xz", "xz"), ("a.zip", "zip")]:
        code, _, err = _analyze(tmp_path / name, capsys)
        assert code == 3 and f"a {what}" in err and "unpack it first" in err
