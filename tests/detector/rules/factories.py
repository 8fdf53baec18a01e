"""Builders for the rules' inputs: a healthy call by default, each test changes one thing."""

from typing import Any

from callqual.detector.call_context import CallContext
from callqual.schemas import CallRecord, SdpMedia, SipMessageEvent, StreamRecord

CALLER = ("198.51.100.10", 5060)
CALLEE = ("203.0.113.20", 5060)
CALLER_RTP = ("198.51.100.10", 40000)
CALLEE_RTP = ("203.0.113.20", 50000)


def sdp(ip: str, port: int, pts: list[int] | None = None, **kw: Any) -> SdpMedia:
    pts = [0, 101] if pts is None else pts
    rtpmap = {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000", 96: "opus/48000/2"}
    return SdpMedia(
        media="audio",
        connection_ip=ip,
        port=port,
        proto="RTP/AVP",
        payload_types=pts,
        rtpmap={pt: rtpmap[pt] for pt in pts if pt in rtpmap},
        **kw,
    )


def sip(
    first_line: str,
    *,
    frame: int = 1,
    ts: float = 1000.0,
    src: tuple[str, int] = CALLER,
    dst: tuple[str, int] = CALLEE,
    call_id: str = "call-1",
    **kw: Any,
) -> SipMessageEvent:
    is_request = not first_line.startswith("SIP/2.0")
    fields: dict[str, Any] = {
        "frame": frame,
        "ts": ts,
        "src_ip": src[0],
        "src_port": src[1],
        "dst_ip": dst[0],
        "dst_port": dst[1],
        "transport": "udp",
        "first_line": first_line,
        "is_request": is_request,
        "call_id": call_id,
        "size": 500,
    }
    parts = first_line.split(" ", 2)
    if is_request:
        fields["method"] = parts[0]
        fields["request_uri"] = parts[1]
        fields["cseq_method"] = parts[0]
    else:
        fields["status_code"] = int(parts[1])
        fields["reason_phrase"] = parts[2] if len(parts) > 2 else ""
    fields["cseq_num"] = 1
    fields["from_uri"] = "sip:alice@example.com"
    fields["to_uri"] = "sip:bob@example.com"
    fields.update(kw)
    return SipMessageEvent(**fields)


def request(method: str, user: str = "bob", **kw: Any) -> SipMessageEvent:
    kw.setdefault("to_uri", f"sip:{user}@example.com")
    return sip(f"{method} sip:{user}@example.com SIP/2.0", **kw)


def response(status: int, method: str = "INVITE", reason: str = "X", **kw: Any) -> SipMessageEvent:
    kw.setdefault("src", CALLEE)
    kw.setdefault("dst", CALLER)
    return sip(f"SIP/2.0 {status} {reason}", cseq_method=method, **kw)


def stream(src: tuple[str, int] = CALLER_RTP, dst: tuple[str, int] = CALLEE_RTP, **kw: Any) -> StreamRecord:
    fields: dict[str, Any] = {
        "call_id": "call-1",
        "ssrc": 0x1234,
        "src_ip": src[0],
        "src_port": src[1],
        "dst_ip": dst[0],
        "dst_port": dst[1],
        "payload_type": 0,
        "payload_types": [0],
        "codec": "PCMU",
        "clock_rate": 8000,
        "first_ts": 1002.0,
        "last_ts": 1032.0,
        "first_frame": 10,
        "packets": 1500,
        "expected": 1500,
        "lost": 0,
        "duplicates": 0,
        "out_of_order": 0,
        "seq_errors": 0,
        "min_delta_ms": 19.0,
        "mean_delta_ms": 20.0,
        "max_delta_ms": 21.0,
        "min_jitter_ms": 0.1,
        "mean_jitter_ms": 1.0,
        "max_jitter_ms": 3.0,
        "mos": 4.4,
        "r_factor": 93.0,
    }
    fields.update(kw)
    return StreamRecord(**fields)


def both_streams(**kw: Any) -> list[StreamRecord]:
    return [stream(**kw), stream(src=CALLEE_RTP, dst=CALLER_RTP, ssrc=0x5678, **kw)]


def record(**kw: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "call_id": "call-1",
        "method": "INVITE",
        "from_uri": "sip:alice@example.com",
        "to_uri": "sip:bob@example.com",
        "caller_ip": CALLER[0],
        "callee_ip": CALLEE[0],
        "state": "completed",
        "final_status": 200,
        "start_ts": 1000.0,
        "answer_ts": 1002.0,
        "end_ts": 1032.0,
        "post_dial_delay_ms": 800.0,
        "setup_time_ms": 2000.0,
        "duration_s": 30.0,
        "offered_media": [sdp(*CALLER_RTP)],
        "answered_media": [sdp(*CALLEE_RTP)],
        "category": "ok",
        "first_frame": 1,
    }
    fields.update(kw)
    return CallRecord(**fields)


def call_messages() -> list[SipMessageEvent]:
    return [
        request("INVITE", frame=1, ts=1000.0, sdp=[sdp(*CALLER_RTP)], user_agent="PhoneA"),
        response(100, frame=2, ts=1000.1),
        response(180, frame=3, ts=1000.8),
        response(200, frame=4, ts=1002.0, sdp=[sdp(*CALLEE_RTP)], to_tag="t1"),
        request("ACK", frame=5, ts=1002.1, to_tag="t1"),
        request("BYE", frame=6, ts=1032.0, to_tag="t1", reason_header="Q.850;cause=16"),
        response(200, method="BYE", frame=7, ts=1032.1, to_tag="t1"),
    ]


def ctx(
    rec: CallRecord | None = None,
    streams: list[StreamRecord] | None = None,
    messages: list[SipMessageEvent] | None = None,
) -> CallContext:
    return CallContext(
        record=rec if rec is not None else record(),
        messages=messages if messages is not None else call_messages(),
        streams=streams if streams is not None else both_streams(),
    )
