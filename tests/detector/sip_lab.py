"""A private SIP lab for the real-attack tests: a network namespace, Kamailio, tcpdump, and the tools.

Everything runs inside a network namespace this module creates, on that
namespace's own loopback, so no packet leaves it and parallel test runs on
the host cannot collide. Addresses (all on the namespace's ``lo``):

* ``127.0.0.2:5060``  Kamailio, a registrar/proxy with digest auth for two subscribers
* ``127.0.0.10``      svmap (SIPVicious), bound with ``-b``
* ``127.0.0.11``      svwar, ``127.0.0.12`` svcrack (see :meth:`SipLab.source_for_unbound`)
* ``127.0.0.13``      sipsak OPTIONS flood, ``127.0.0.14`` SIPp INVITE flood
* ``127.0.0.20``      legitimate callee (SIPp UAS, registered as 200)
* ``127.0.0.21``      legitimate caller (SIPp UAC, registered as 201)

The Kamailio configuration is deliberately minimal (no database): REGISTER
for a known subscriber is challenged (401) and saved once the digest is
right; REGISTER for an unknown user gets 404 (what lets svwar tell existing
extensions from others); an initial INVITE/OPTIONS is relayed to the
registered contact or answered 404; in-dialog requests are relayed by their
Request-URI (no Record-Route).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import dpkt

from tests.detector.sipp_xml import TRYING_RINGING, request, response, scenario, sdp

KAMAILIO_IP = "127.0.0.2"
SVMAP_IP = "127.0.0.10"
SVWAR_IP = "127.0.0.11"
SVCRACK_IP = "127.0.0.12"
SIPSAK_FLOOD_IP = "127.0.0.13"
SIPP_FLOOD_IP = "127.0.0.14"
CALLEE_IP = "127.0.0.20"
CALLER_IP = "127.0.0.21"

#: user -> password of Kamailio's subscribers.
SUBSCRIBERS = {"200": "alpha-200", "201": "bravo-201"}

KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:{ip}:5060
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
# plain RFC 2069 challenge (no qop). svcrack 0.3.8 answers qop=auth anyway, without cnonce/nc,
# so Kamailio rejects its credentials as malformed ("Credentials are not filled properly") and
# answers 401 to every guess, the right password included: svcrack cannot succeed here.
modparam("auth", "qop", "")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (uri == myself) {{
            if (!is_method("ACK")) {{ sl_send_reply("481", "Call/Transaction Does Not Exist"); }}
            exit;
        }}
        if (is_method("ACK")) {{ forward(); exit; }}
        t_relay();
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("ACK")) {{ exit; }}
    if (is_method("REGISTER")) {{
        $var(pw) = "";
{password_lookup}
        if ($var(pw) == "") {{ sl_send_reply("404", "Not Found"); exit; }}
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{ www_challenge("$td", "0"); exit; }}
        save("location");
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"""


def kamailio_cfg(ip: str = KAMAILIO_IP, subscribers: dict[str, str] = SUBSCRIBERS) -> str:
    lookup = "\n".join(
        f'        if ($tU == "{user}") {{ $var(pw) = "{pw}"; }}' for user, pw in subscribers.items()
    )
    return KAMAILIO_CFG.format(ip=ip, modules=KAMAILIO_MODULES, password_lookup=lookup)


# -- SIPp scenarios ---------------------------------------------------------------------------------

_YEALINK = "User-Agent: Yealink SIP-T46S 66.86.0.15\n"
_PAUSE = '  <pause milliseconds="{ms}"/>\n'


def register_scenario(user: str, password: str, contact: str) -> str:
    """REGISTER, answer the 401 challenge with the digest of ``password``, expect 200."""

    def register(cseq: int, credentials: str = "") -> str:
        return request(
            "REGISTER",
            "sip:[remote_ip]",
            cseq,
            sender=user,
            tag="[pid]reg[call_number]",
            to=user,
            from_host="[remote_ip]",
            contact=f"sip:{user}@{contact}",
            before_max_forwards=f"{credentials}Expires: 300\n",
            after_max_forwards=_YEALINK,
        )

    return scenario(
        "register with digest",
        register(1),
        '  <recv response="401" auth="true"/>\n',
        register(2, f"[authentication username={user} password={password}]\n"),
        '  <recv response="200"/>\n',
    )


def call_scenario(caller: str, callee: str) -> str:
    """A call through the proxy: INVITE with SDP, ACK the 200, BYE half a second later."""
    dialog = {"sender": caller, "tag": "[pid]call[call_number]", "to": callee, "from_host": "[remote_ip]"}
    in_dialog = {**dialog, "to_tag": "[peer_tag_param]", "contact": None}
    offer = sdp("201", session="53655765", version="2353687637", direction=None)
    return scenario(
        "call through the proxy",
        request("INVITE", f"sip:{callee}@[remote_ip]", 1, **dialog, after_max_forwards=_YEALINK, body=offer),
        TRYING_RINGING,
        '  <recv response="200" rtd="true" rrs="true"/>\n',
        request("ACK", "[next_url]", 1, **in_dialog, retrans=False),
        _PAUSE.format(ms=500),
        request("BYE", "[next_url]", 2, **in_dialog),
        '  <recv response="200" crlf="true"/>\n',
    )


def _invite_flood_scenario() -> str:
    dialog = {"sender": "flood", "tag": "[pid]fl[call_number]", "to": "9[call_number]", "retrans": False}
    uri = "sip:9[call_number]@[remote_ip]"
    return scenario(
        "invite flood",
        request("INVITE", uri, 1, **dialog),
        '  <recv response="100" optional="true"/>\n  <recv response="404"/>\n',
        request("ACK", uri, 1, **dialog, to_tag="[peer_tag_param]", contact=None, branch="[branch-1]"),
    )


#: An INVITE flood at unregistered numbers (9 + call number: never a subscriber): INVITE, 404,
#: ACK (the ACK of a non-2xx keeps the INVITE's branch).
INVITE_FLOOD_SCENARIO = _invite_flood_scenario()

_BUSY_TAG = ";tag=[pid]busy[call_number]"
#: A UA that rings for 40 ms, then answers 486 Busy Here (a flood's victim, refusing every call).
BUSY_SCENARIO = scenario(
    "busy: ring, then 486",
    '  <recv request="INVITE"/>\n',
    response("180 Ringing", to_tag=_BUSY_TAG),
    _PAUSE.format(ms=40),
    response("486 Busy Here", to_tag=_BUSY_TAG),
    '  <recv request="ACK"/>\n',
)


# -- the namespace ----------------------------------------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)


@dataclass
class Run:
    """One tool run: its command line, exit code, wall time and output tail."""

    name: str
    cmd: list[str]
    returncode: int
    seconds: float
    output: str


@dataclass
class SipLab:
    """A network namespace with its loopback up; programs run inside it through :meth:`cmd`."""

    workdir: Path
    ns: str = field(default_factory=lambda: f"cqatk{os.getpid() % 100000}")
    runs: list[Run] = field(default_factory=list)
    _procs: list[subprocess.Popen[str]] = field(default_factory=list)
    _logs: list[TextIO] = field(default_factory=list)

    def create(self) -> None:
        _ip("netns", "del", self.ns)
        made = _ip("netns", "add", self.ns)
        assert made.returncode == 0, f"ip netns add (needs root / CAP_SYS_ADMIN): {made.stderr}"
        up = _ip("-n", self.ns, "link", "set", "lo", "up")
        assert up.returncode == 0, up.stderr

    def destroy(self) -> None:
        try:
            for proc in reversed(self._procs):
                try:
                    stop(proc)
                except Exception:  # kill it anyway; the namespace must go
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
        finally:
            for log in self._logs:
                log.close()
            _ip("netns", "del", self.ns)

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]

    def start(self, name: str, *argv: str, ready: str | None = None) -> subprocess.Popen[str]:
        """Start a long-running program in the namespace (stopped by :meth:`destroy` at the latest).

        With ``ready``, wait (bounded) until that text appears on its stderr.
        """
        log = (self.workdir / f"{name}.log").open("w", encoding="utf-8")
        self._logs.append(log)
        proc = subprocess.Popen(
            self.cmd(*argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.PIPE if ready else log,
            text=True,
            cwd=self.workdir,
            start_new_session=True,
        )
        self._procs.append(proc)
        if ready is not None:
            assert proc.stderr is not None
            deadline = time.monotonic() + 15
            seen = ""
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                seen += line
                if ready in line or not line:
                    break
            assert ready in seen, f"{name} did not start: {seen[-2000:]}"
        return proc

    def run(self, name: str, *argv: str, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
        """Run a tool to completion in the namespace (bounded by ``timeout``)."""
        t0 = time.monotonic()
        done = subprocess.run(
            self.cmd(*argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            check=False,
            env={**os.environ, "HOME": str(self.workdir), **(env or {})},
        )
        run = Run(
            name, list(argv), done.returncode, time.monotonic() - t0, (done.stdout + done.stderr)[-3000:]
        )
        self.runs.append(run)
        return run

    def source_for_unbound(self, dst: str, src: str | None) -> None:
        """Make unbound sockets in the namespace talk to ``dst`` from ``src`` (None: the default).

        svwar and svcrack 0.3.8 accept ``-b`` but never pass it to their socket
        (only svmap does), so their packets would all leave from 127.0.0.1; a
        host route with a preferred source gives each tool its own address.
        """
        if src is None:
            _ip("-n", self.ns, "route", "del", "table", "local", "local", dst)
            return
        done = _ip("-n", self.ns, "route", "replace", "table", "local", "local", dst, "dev", "lo", "src", src)
        assert done.returncode == 0, done.stderr


def stop(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    """SIGTERM the process group we started (SIGKILL if it does not go); its unread stderr, if piped."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    rest = ""
    if proc.stderr is not None and not proc.stderr.closed:
        rest = proc.stderr.read()
        proc.stderr.close()
    return rest


# -- what the capture holds, read independently of callqual -----------------------------------------


@dataclass
class Packet:
    frame: int  #: 1-based, as Wireshark numbers them
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    first_line: str
    user_agent: str | None


def read_sip(pcap: Path) -> list[Packet]:
    """Every UDP packet of the capture with its SIP first line and User-Agent (dpkt, not our decoder)."""
    out: list[Packet] = []
    with pcap.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        link = reader.datalink()
        for n, (ts, buf) in enumerate(reader, start=1):
            if link == dpkt.pcap.DLT_EN10MB:
                ip = dpkt.ethernet.Ethernet(buf).data
            elif link == dpkt.pcap.DLT_LINUX_SLL:
                ip = dpkt.sll.SLL(buf).data
            else:
                ip = dpkt.ip.IP(buf)
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.udp.UDP):
                continue
            text = bytes(ip.data.data).decode("latin-1")
            lines = text.split("\r\n")
            ua = next(
                (ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("user-agent:")), None
            )
            out.append(
                Packet(
                    n,
                    float(ts),
                    ".".join(str(b) for b in ip.src),
                    ".".join(str(b) for b in ip.dst),
                    ip.data.sport,
                    ip.data.dport,
                    lines[0],
                    ua,
                )
            )
    return out
