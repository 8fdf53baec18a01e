"""Turns one call spec into its SIP ladder, its media plans and its label.

Timing model: the capture point sits between caller and callee. A message
from the caller captured at ``t`` is answered by the callee at
``t + rtt_callee + processing`` (and symmetrically), so the ladder in the
capture has the gaps a real probe would see.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from callqual.schemas import CallCategory
from callqual.simulator.impairments import timer_a_schedule
from callqual.simulator.labels import CallLabel, Fault, InjectedParams, StreamLabel
from callqual.simulator.media import PTIME_US, RtcpSide, StreamPlan, rtcp_frames, talkspurts
from callqual.simulator.pcap_writer import TimedFrame, UdpFlow
from callqual.simulator.rtp import CODECS, Codec
from callqual.simulator.sip_messages import (
    Dialog,
    SipMessage,
    SipParty,
    ack_for_failure,
    cancel_for,
    digest_challenge,
    digest_credentials,
    new_branch,
    random_hex,
    request,
    response,
    sdp_body,
)
from callqual.simulator.spec import CallSpec, TransactionSpec, call_category, call_faults
from callqual.simulator.tcp import tcp_conversation

#: Sources per call in the merge: SIP, two RTP directions, two RTCP directions.
SOURCES_PER_CALL = 5
_MS = 1000
_AUTH_LOOP_ATTEMPTS = 3
_RINGING_FAILURES = frozenset({480, 486, 487, 600, 603})
_RTP_PORT_BASE = 16384
_REALM = "voip.example.net"


@dataclass(slots=True)
class CallArtifacts:
    """Everything one call contributes: time-ordered frame sources and the call's label."""

    sources: list[Iterator[TimedFrame]]
    label: CallLabel
    sip_packets: int = 0
    rtcp_packets: int = 0


class _Ladder:
    """Collects SIP messages with capture times, in both directions of one call."""

    def __init__(
        self, a: SipParty, b: SipParty, rng: random.Random, *, rtt_a: int = 20 * _MS, rtt_b: int = 20 * _MS
    ) -> None:
        self.a_to_b = UdpFlow(a.ip, a.port, b.ip, b.port, ip_id=rng.randrange(65536))
        self.b_to_a = UdpFlow(b.ip, b.port, a.ip, a.port, ip_id=rng.randrange(65536))
        self.messages: list[tuple[int, bool, bytes]] = []
        self.tcp = a.transport == "TCP"
        self.a, self.b = a, b
        self.rtts = (rtt_a, rtt_b)
        self.rng = random.Random(rng.getrandbits(64))

    def send(self, t_us: int, message: SipMessage, *, from_a: bool) -> int:
        self.messages.append((t_us, from_a, message.to_bytes()))
        return t_us

    def frames(self, source: int) -> list[TimedFrame]:
        if self.tcp:
            conversation = tcp_conversation(
                self.messages,
                # The caller connects from an ephemeral port to the callee's listening port.
                client=(self.a.ip, 32768 + self.rng.randrange(28000)),
                server=(self.b.ip, self.b.port),
                rtt_client_us=self.rtts[0],
                rtt_server_us=self.rtts[1],
                rng=self.rng,
            )
            return [(t_us, source, n, frame) for n, (t_us, frame) in enumerate(conversation)]
        out: list[TimedFrame] = []
        for t_us, from_a, data in sorted(self.messages, key=lambda m: m[0]):
            flow = self.a_to_b if from_a else self.b_to_a
            for piece in flow.frames(data):
                out.append((t_us, source, len(out), piece))
        return out


def _large_invite_headers(dialog: Dialog, rng: random.Random) -> list[tuple[str, str]]:
    """What carrier interconnects add to an INVITE; enough of it pushes the message past 1500 bytes."""
    caller = dialog.caller
    icid = random_hex(rng, 32)
    headers = [
        ("P-Asserted-Identity", f'"{caller.display}" <sip:+4930{caller.user}@{caller.domain};user=phone>'),
        ("Privacy", "none"),
        ("Supported", "100rel, timer, replaces, norefersub, histinfo"),
        ("Session-Expires", "1800;refresher=uac"),
        ("Min-SE", "90"),
        ("P-Charging-Vector", f"icid-value={icid};icid-generated-at={caller.ip};orig-ioi=carrier.example"),
        ("P-Early-Media", "supported"),
    ]
    for i in range(1, 5):
        headers.append(
            (
                "History-Info",
                f"<sip:+4989{dialog.callee.user}{i}@gw{i}.carrier.example;user=phone?Reason=SIP%3Bcause%3D302>"
                f";index=1.{i}",
            )
        )
    for i in range(1, 3):
        headers.append(
            ("Diversion", f"<sip:+4989555000{i}@carrier.example;user=phone>;reason=unconditional;counter={i}")
        )
    return headers


def build_call(spec: CallSpec, *, seed: str, epoch_us: int, source: int) -> CallArtifacts:
    """The call's SIP ladder, media and label; ``source`` is its first of ``SOURCES_PER_CALL`` merge slots."""
    rng = random.Random(seed)
    caller, callee = spec.caller, spec.callee
    if spec.transport == "TCP":
        caller, callee = replace(caller, transport="TCP"), replace(callee, transport="TCP")
    rtt_c = rng.randint(10, 40) * _MS
    rtt_e = rng.randint(10, 60) * _MS
    proc = rng.randint(1, 5) * _MS
    dialog = Dialog(
        call_id=f"{random_hex(rng, 24)}@{caller.ip}",
        caller=caller,
        callee=callee,
        from_tag=random_hex(rng, 10),
        request_uri=f"sip:{callee.user}@{callee.ip}:{callee.port}",
    )
    to_tag = random_hex(rng, 10)
    # The challenge comes from the proxy in front of the callee: its own tag, not the callee's.
    proxy_tag = random_hex(rng, 10)
    codec = CODECS[spec.codec]
    offer_codecs = [CODECS[name] for name in (spec.offer or (spec.codec,))]
    caller_rtp = _RTP_PORT_BASE + 2 * rng.randrange(2000)
    callee_rtp = _RTP_PORT_BASE + 2 * rng.randrange(2000)
    session_c, session_e = rng.randrange(10**9), rng.randrange(10**9)
    ladder = _Ladder(caller, callee, rng, rtt_a=rtt_c, rtt_b=rtt_e)
    t = epoch_us + round(spec.start_s * 1_000_000)
    start_us = t

    extra = _large_invite_headers(dialog, rng) if spec.large_invite else []
    extra += list(spec.invite_headers)
    offer = sdp_body(caller, session_c, 1, caller_rtp, offer_codecs)
    cseq = 1
    auth_header: tuple[str, str] | None = None
    challenges = 0
    final_status: int | None = None
    answered = False
    t200 = 0
    attempts = 1 + (_AUTH_LOOP_ATTEMPTS if spec.auth in ("loop_401", "loop_407") else 0)
    if spec.auth == "challenge_ok":
        attempts = 2
    for attempt in range(attempts):
        invite = request(
            dialog,
            "INVITE",
            sender=caller,
            branch=new_branch(rng),
            uri=dialog.request_uri,
            cseq=cseq,
            body=offer,
            extra=extra + ([auth_header] if auth_header else []),
        )
        challenged = spec.auth != "none" and (attempt < attempts - 1 or spec.auth.startswith("loop"))
        sends = timer_a_schedule(spec.invite_retransmissions if attempt == 0 else 0)
        for offset in sends:
            ladder.send(t + offset, invite, from_a=True)
        t += sends[-1]
        if challenged:
            proxy = spec.auth != "loop_401"
            challenge = digest_challenge(rng, _REALM, proxy=proxy)
            t += rtt_e + proc
            resp = response(
                invite, 407 if proxy else 401, responder=callee, to_tag=proxy_tag, extra=[challenge]
            )
            ladder.send(t, resp, from_a=False)
            t += rtt_c + proc
            ladder.send(t, ack_for_failure(invite, resp), from_a=True)
            challenges += 1
            final_status = resp.status
            auth_header = digest_credentials(
                rng, caller, _REALM, dialog.request_uri, challenge[1], proxy=proxy
            )
            cseq += 1
            t += rng.randint(5, 30) * _MS
            if attempt == attempts - 1:
                break
            continue
        # The INVITE that goes through the normal ladder.
        t_invite = t
        ladder.send(
            t_invite + rtt_e + proc, response(invite, 100, responder=callee, to_tag=None), from_a=False
        )
        t_final = t_invite + round(spec.pdd_s * 1_000_000)
        rings = spec.final_status < 300 or spec.final_status in _RINGING_FAILURES
        if spec.early_media:
            early = sdp_body(callee, session_e, 1, callee_rtp, [codec])
            ladder.send(
                t_final - 200 * _MS,
                response(invite, 183, responder=callee, to_tag=to_tag, body=early),
                from_a=False,
            )
        if rings:
            ladder.send(t_final, response(invite, 180, responder=callee, to_tag=to_tag), from_a=False)
            t_final += round(spec.ring_s * 1_000_000)
        final_status = spec.final_status
        if spec.final_status == 487:
            cancel = cancel_for(invite)
            ladder.send(t_final, cancel, from_a=True)
            t_final += rtt_e + proc
            ladder.send(t_final, response(cancel, 200, responder=callee, to_tag=to_tag), from_a=False)
            t_final += 1 * _MS
        if spec.final_status >= 300:
            final = response(invite, spec.final_status, responder=callee, to_tag=to_tag)
            ladder.send(t_final, final, from_a=False)
            t = t_final + rtt_c + proc
            ladder.send(t, ack_for_failure(invite, final), from_a=True)
        else:
            answer = sdp_body(callee, session_e, 1, callee_rtp, [codec])
            ok = response(invite, 200, responder=callee, to_tag=to_tag, body=answer)
            t200 = t_final
            ladder.send(t200, ok, from_a=False)
            dialog.to_tag = to_tag
            ack = request(
                dialog, "ACK", sender=caller, branch=new_branch(rng), uri=callee.contact_uri, cseq=cseq
            )
            ladder.send(t200 + rtt_c + proc, ack, from_a=True)
            answered = True
        break

    if answered and spec.reinvites:
        _session_refreshes(
            spec,
            ladder,
            dialog,
            rng=rng,
            t200=t200,
            delays=(rtt_c, rtt_e, proc),
            cseq=cseq,
            offer=(session_c, caller_rtp, codec),
            answer=sdp_body(callee, session_e, 1, callee_rtp, [codec]),
        )
        cseq += spec.reinvites

    sources: list[Iterator[TimedFrame]] = []
    stream_labels: list[StreamLabel] = []
    rtcp_packets = 0
    end_us = t
    if answered:
        t_bye = t200 + round(spec.talk_s * 1_000_000)
        bye_extra = [("Reason", spec.bye_reason)] if spec.bye_reason else []
        if spec.bye_from_callee:
            bye = request(
                dialog,
                "BYE",
                sender=callee,
                branch=new_branch(rng),
                uri=caller.contact_uri,
                cseq=rng.randint(1, 100),
                from_caller=False,
                extra=bye_extra,
            )
            ladder.send(t_bye, bye, from_a=False)
            end_us = t_bye + rtt_c + proc
            ladder.send(end_us, response(bye, 200, responder=caller, to_tag=None), from_a=True)
        else:
            bye = request(
                dialog,
                "BYE",
                sender=caller,
                branch=new_branch(rng),
                uri=callee.contact_uri,
                cseq=cseq + 1,
                extra=bye_extra,
            )
            ladder.send(t_bye, bye, from_a=True)
            end_us = t_bye + rtt_e + proc
            ladder.send(end_us, response(bye, 200, responder=callee, to_tag=None), from_a=False)
        if not spec.media.no_media:
            sources, stream_labels, rtcp_packets = _media(
                spec,
                rng,
                seed=seed,
                dialog=dialog,
                source=source,
                t200=t200,
                t_bye=t_bye,
                rtt_c=rtt_c,
                ports=(caller_rtp, callee_rtp),
            )
    sip_frames = ladder.frames(source)
    sources.insert(0, iter(sip_frames))
    label = CallLabel(
        call_id=dialog.call_id,
        method="INVITE",
        from_uri=caller.aor,
        to_uri=callee.aor,
        caller_ip=caller.ip,
        callee_ip=callee.ip,
        user_agent=caller.user_agent,
        transport=spec.transport,
        codec=spec.codec if answered else None,
        final_status=final_status,
        category=call_category(spec),
        faults=call_faults(spec),
        params=_params(spec, challenges),
        start_ts=start_us / 1_000_000,
        end_ts=end_us / 1_000_000,
        talk_s=spec.talk_s if answered else 0.0,
        dtmf=spec.dtmf if answered and not spec.media.no_media else "",
        description=spec.description,
        anomaly_kind=spec.anomaly_kind,
        streams=stream_labels,
    )
    return CallArtifacts(
        sources=sources,
        label=label,
        sip_packets=len(sip_frames),
        rtcp_packets=rtcp_packets,
    )


def _session_refreshes(
    spec: CallSpec,
    ladder: _Ladder,
    dialog: Dialog,
    *,
    rng: random.Random,
    t200: int,
    delays: tuple[int, int, int],
    cseq: int,
    offer: tuple[int, int, Codec],
    answer: str,
) -> None:
    """``spec.reinvites`` caller re-INVITEs (same media, new SDP version), evenly over the talk time.

    Each is answered 200 OK with the callee's unchanged SDP and ACKed: what
    a session timer or a chatty SBC does, only more often than usual.
    """
    rtt_c, rtt_e, proc = delays
    session_c, caller_rtp, codec = offer
    callee = dialog.callee
    step = round(spec.talk_s * 1_000_000) // (spec.reinvites + 1)
    for k in range(1, spec.reinvites + 1):
        t = t200 + k * step
        body = sdp_body(dialog.caller, session_c, 1 + k, caller_rtp, [codec])
        invite = request(
            dialog,
            "INVITE",
            sender=dialog.caller,
            branch=new_branch(rng),
            uri=callee.contact_uri,
            cseq=cseq + k,
            body=body,
        )
        ladder.send(t, invite, from_a=True)
        t += rtt_e + proc
        ok = response(invite, 200, responder=callee, to_tag=dialog.to_tag, body=answer)
        ladder.send(t, ok, from_a=False)
        ack = request(
            dialog, "ACK", sender=dialog.caller, branch=new_branch(rng), uri=callee.contact_uri, cseq=cseq + k
        )
        ladder.send(t + rtt_c + proc, ack, from_a=True)


def _params(spec: CallSpec, challenges: int) -> InjectedParams:
    loss, jitter = spec.media.loss, spec.media.jitter
    return InjectedParams(
        loss_pct=loss.random_pct if loss.random_pct > 0 else (loss.expected_pct if loss.burst else None),
        burst_p=loss.burst[0] if loss.burst else None,
        burst_r=loss.burst[1] if loss.burst else None,
        jitter_std_ms=jitter.std_ms or None,
        post_dial_delay_s=spec.pdd_s,
        invite_retransmissions=spec.invite_retransmissions or None,
        auth_challenges=challenges or None,
    )


def _media(
    spec: CallSpec,
    rng: random.Random,
    *,
    seed: str,
    dialog: Dialog,
    source: int,
    t200: int,
    t_bye: int,
    rtt_c: int,
    ports: tuple[int, int],
) -> tuple[list[Iterator[TimedFrame]], list[StreamLabel], int]:
    caller, callee = dialog.caller, dialog.callee
    codec = CODECS[spec.codec]
    caller_port, callee_port = ports
    # The callee sends from its 200 OK; the caller once the 200 OK has reached it; both stop at the BYE.
    callee_start = t200 + 1 * _MS
    caller_start = t200 + rtt_c + 2 * _MS
    # A mismatched gateway sends its own codec whatever the answer said; the callee sticks to the answer.
    sent_codec = CODECS[spec.rtp_codec] if spec.rtp_codec else codec
    # Packets go to and come from the parties' real addresses even when an SDP names a LAN address
    # behind a NAT: the far end learns the public one from the first RTP (symmetric RTP, 'comedia').
    directions = [
        (caller, caller_port, callee, callee_port, caller_start, spec.dtmf, sent_codec),
        (callee, callee_port, caller, caller_port, callee_start, "", codec),
    ]
    plans: list[StreamPlan] = []
    for n, (src, sport, dst, dport, start, dtmf, stream_codec) in enumerate(directions):
        count = max((t_bye - start) // PTIME_US, 0)
        share = spec.media.callee_talkspurt_share if n == 1 else 1.0
        # Its own generator: the draws of every call without silence suppression stay as they were.
        slots = talkspurts(count, share, random.Random(f"{seed}/talkspurts")) if share < 1.0 else ()
        plans.append(
            StreamPlan(
                flow=UdpFlow(src.ip, sport, dst.ip, dport, ip_id=rng.randrange(65536)),
                codec=stream_codec,
                ssrc=rng.getrandbits(32),
                seq0=rng.randrange(65536),
                ts0=rng.getrandbits(32),
                start_us=start,
                count=len(slots) if slots else count,
                seed=f"{seed}/rtp{n}",
                loss=spec.media.loss,
                jitter=spec.media.jitter,
                dtmf=dtmf,
                slots=slots,
            )
        )
    senders = plans[:1] if spec.media.one_way else plans
    sources: list[Iterator[TimedFrame]] = [plan.frames(source + 1 + n) for n, plan in enumerate(senders)]
    rtcp: list[TimedFrame] = []
    if spec.media.rtcp:
        sides = [
            RtcpSide(
                flow=UdpFlow(
                    caller.ip, caller_port + 1, callee.ip, callee_port + 1, ip_id=rng.randrange(65536)
                ),
                ssrc=plans[0].ssrc,
                cname=f"{caller.user}@{caller.ip}",
                phase_us=caller_start + rng.randint(1000, 4999) * _MS,
                sending=plans[0],
                receiving=None if spec.media.one_way else plans[1],
            )
        ]
        # One-way audio: the callee's phone never sends RTP, but it does hear the caller, so its
        # RTCP receiver reports (RR, no SR) still arrive -- the evidence that tells it from no media.
        sides.append(
            RtcpSide(
                flow=UdpFlow(
                    callee.ip, callee_port + 1, caller.ip, caller_port + 1, ip_id=rng.randrange(65536)
                ),
                ssrc=plans[1].ssrc,
                cname=f"{callee.user}@{callee.ip}",
                phase_us=callee_start + rng.randint(1000, 4999) * _MS,
                sending=None if spec.media.one_way else plans[1],
                receiving=plans[0],
            )
        )
        rtcp = rtcp_frames(sides, t_bye, source + 3, rtt_c // 2)
        sources.append(iter(rtcp))
    labels = [_stream_label(plan, rtcp=spec.media.rtcp) for plan in senders]

    return sources, labels, len(rtcp)


def _stream_label(plan: StreamPlan, *, rtcp: bool) -> StreamLabel:
    captured = plan.captured()
    jitter_mean, jitter_max = plan.rfc3550_jitter_ms()
    return StreamLabel(
        ssrc=plan.ssrc,
        src_ip=plan.flow.src_ip,
        src_port=plan.flow.src_port,
        dst_ip=plan.flow.dst_ip,
        dst_port=plan.flow.dst_port,
        payload_type=plan.codec.payload_type,
        codec=plan.codec.name,
        clock_rate=plan.codec.clock_rate,
        sent=plan.count,
        captured=captured,
        lost=plan.count - captured,
        jitter_mean_ms=round(jitter_mean, 3),
        jitter_max_ms=round(jitter_max, 3),
        rtcp=rtcp,
    )


def build_transaction(spec: TransactionSpec, *, seed: str, epoch_us: int, source: int) -> CallArtifacts:
    """A REGISTER (optionally digest-challenged), OPTIONS or unanswered/refused INVITE, with its own Call-ID.

    INVITE transactions are what floods and sweeps send: no dialog, no media,
    at most a final error (ACKed) or no answer at all.
    """
    rng = random.Random(seed)
    client, server = spec.client, spec.server
    rtt = rng.randint(10, 50) * _MS
    dialog = Dialog(
        call_id=f"{random_hex(rng, 24)}@{client.ip}",
        caller=client,
        callee=client if spec.method == "REGISTER" else server,
        from_tag=random_hex(rng, 10),
    )
    if spec.method == "REGISTER":
        uri = f"sip:{server.domain}"
    elif spec.method == "INVITE":
        uri = f"sip:{server.user}@{server.ip}:{server.port}"
    else:
        uri = f"sip:{server.ip}:{server.port}"
    ladder = _Ladder(client, server, rng)
    t = epoch_us + round(spec.start_s * 1_000_000)
    start_us = t
    extra = [("Expires", "3600")] if spec.method == "REGISTER" else []
    req = request(dialog, spec.method, sender=client, branch=new_branch(rng), uri=uri, cseq=1, extra=extra)
    ladder.send(t, req, from_a=True)
    challenges = 0
    server_tag = random_hex(rng, 10)
    if spec.challenge:
        challenge = digest_challenge(rng, _REALM, proxy=False)
        t += rtt
        resp = response(req, 401, responder=server, to_tag=server_tag, extra=[challenge])
        ladder.send(t, resp, from_a=False)
        challenges = 1
        t += rng.randint(5, 40) * _MS
        creds = digest_credentials(rng, client, _REALM, uri, challenge[1], proxy=False)
        req = request(
            dialog, spec.method, sender=client, branch=new_branch(rng), uri=uri, cseq=2, extra=[*extra, creds]
        )
        ladder.send(t, req, from_a=True)
    if spec.final_status is not None:
        t += rtt
        final_extra: list[tuple[str, str]] = []
        if spec.method == "REGISTER" and spec.final_status == 200:
            final_extra = [("Contact", f"<{client.contact_uri}>;expires=3600")]
        final = response(req, spec.final_status, responder=server, to_tag=server_tag, extra=final_extra)
        ladder.send(t, final, from_a=False)
        if spec.method == "INVITE" and spec.final_status >= 300:
            t += rtt
            ladder.send(t, ack_for_failure(req, final), from_a=True)
    frames = ladder.frames(source)
    faults: list[Fault] = list(spec.faults if spec.faults is not None else ())
    if spec.suspicious and spec.faults is None:
        faults.append("scanner")
    if spec.challenge:
        faults.append("auth_challenge")
    label = CallLabel(
        call_id=dialog.call_id,
        method=spec.method,
        from_uri=client.aor,
        to_uri=dialog.callee.aor,
        caller_ip=client.ip,
        callee_ip=server.ip,
        user_agent=client.user_agent,
        codec=None,
        final_status=spec.final_status,
        category=_transaction_category(spec),
        faults=faults,
        params=InjectedParams(auth_challenges=challenges or None),
        start_ts=start_us / 1_000_000,
        end_ts=t / 1_000_000,
        description=spec.description,
    )
    return CallArtifacts(sources=[iter(frames)], label=label, sip_packets=len(frames))


def _transaction_category(spec: TransactionSpec) -> CallCategory:
    if spec.suspicious:
        return "suspicious"
    if spec.final_status is None:
        return "failed_network"
    return "ok" if spec.final_status < 300 else "failed_auth"
