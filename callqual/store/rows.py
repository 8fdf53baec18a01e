"""Wire models -> store rows: pure functions, the same for ``analyze --store`` and the Kafka service.

Keys are hashes of what a message or stream *is* (time, frame, addresses, SSRC), never of
when it was stored, so a replay or the other ingest path yields the same keys and upserts.
"""

import re
from datetime import UTC, datetime
from functools import lru_cache
from hashlib import blake2b
from typing import Any

from callqual.detector.emodel import loss_ratio, stream_mos
from callqual.detector.rules.base import SECURITY_RULES, uri_user
from callqual.schemas import (
    Alert,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    RtpStreamStats,
    SipMessageEvent,
    StreamRecord,
)

Row = dict[str, Any]

#: Alert rule -> what kind of problem it names (the UI and Grafana group by it).
RULE_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "low_mos",
            "packet_loss",
            "high_jitter",
            "one_way_audio",
            "no_media",
            "codec_mismatch",
            "sdp_private_address",
        ),
        "quality",
    ),
    **dict.fromkeys(
        ("call_failed", "dropped_call", "long_post_dial_delay", "sip_retransmissions"), "failure"
    ),
    **dict.fromkeys(SECURITY_RULES, "security"),
    "anomalous_call": "learned",
}

#: Leg-correlation headers kept for linking the legs of one call across hops (column -> header names).
CORRELATION_HEADERS: dict[str, tuple[bytes, ...]] = {
    "x_cid": (b"x-cid",),
    "session_id": (b"session-id",),
    "p_charging_vector": (b"p-charging-vector",),
}
_WANTED = {name: column for column, names in CORRELATION_HEADERS.items() for name in names}
_HEADER_LINE = re.compile(rb"^([A-Za-z0-9!%*_+`'~.-]+)[ \t]*:[ \t]*(.*?)[ \t]*$")
_MAX_HEADER_VALUE = 512


def utc(ts: float) -> datetime:
    """Capture time (epoch seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def _hash64(text: str, data: bytes = b"") -> int:
    """A signed 64-bit key (fits BIGINT): blake2b of ``text`` (UTF-8) followed by ``data``."""
    h = blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8)
    if data:
        h.update(data)
    return int.from_bytes(h.digest(), "big", signed=True)


def _key(*parts: object, data: bytes = b"") -> int:
    """A signed 64-bit key from the parts' text (``str``; a float's ``repr`` is its ``str``)
    joined by US (0x1f), then ``data``. The per-message keys below build the same text with
    one f-string: stored keys must never change, so the two spellings must agree."""
    return _hash64("\x1f".join([str(p) for p in parts]), data)


def stream_key(s: RtpStreamStats) -> int:
    return _stream_key((s.ssrc, s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.first_ts))


@lru_cache(maxsize=8192, typed=True)
def _stream_key(fields: tuple[int, str, int, str, int, float]) -> int:
    """Cached: all of a stream's interval reports (one every few seconds) carry the same fields."""
    return _key(*fields)


def message_key(m: SipMessageEvent) -> int:
    """Two messages in one TCP segment share time, frame and addresses: their bytes tell them apart."""
    return _hash64(
        f"{m.ts}\x1f{m.frame}\x1f{m.src_ip}\x1f{m.src_port}\x1f{m.dst_ip}\x1f{m.dst_port}\x1f{m.call_id}",
        m.raw,
    )


def transaction_key(m: SipMessageEvent, start: str | None) -> int:
    """Same call, transaction, direction and start line: a repeat is a retransmission."""
    return _hash64(
        f"{m.call_id}\x1f{m.via_branch}\x1f{m.cseq_num}\x1f{m.cseq_method}\x1f{start}\x1f{m.src_ip}\x1f{m.dst_ip}"
    )


#: No leg-correlation header in the message: the common case, one shared answer.
_NO_HEADERS: tuple[str | None, ...] = (None,) * len(CORRELATION_HEADERS)
_COLUMN_INDEX = {column: i for i, column in enumerate(CORRELATION_HEADERS)}


def correlation_values(raw: bytes) -> tuple[str | None, ...]:
    """X-CID, Session-ID and P-Charging-Vector (``CORRELATION_HEADERS`` order) as they appear in
    the message head (first occurrence)."""
    # The common case, none of the names anywhere in the message: one lower-casing and a
    # substring scan per name, no copy of the head, no per-line parsing.
    lowered = raw.lower()
    for name in _WANTED:
        if name in lowered:
            break
    else:
        return _NO_HEADERS
    found = list(_NO_HEADERS)
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines()[1:]:
        match = _HEADER_LINE.match(line)
        if match is None:
            continue
        column = _WANTED.get(match.group(1).lower())
        if column is not None and found[_COLUMN_INDEX[column]] is None:
            value = match.group(2)[:_MAX_HEADER_VALUE].decode("utf-8", "backslashreplace")
            found[_COLUMN_INDEX[column]] = value
    return tuple(found)


def correlation_headers(raw: bytes) -> dict[str, str | None]:
    """:func:`correlation_values` by column name."""
    return dict(zip(CORRELATION_HEADERS, correlation_values(raw), strict=True))


def call_row(c: CallRecord) -> Row:
    return {
        "call_id": c.call_id,
        "start_ts": utc(c.start_ts),
        "answer_ts": None if c.answer_ts is None else utc(c.answer_ts),
        "end_ts": None if c.end_ts is None else utc(c.end_ts),
        "method": c.method,
        "from_uri": c.from_uri,
        "to_uri": c.to_uri,
        "from_user": uri_user(c.from_uri),
        "to_user": uri_user(c.to_uri),
        "caller_ip": c.caller_ip,
        "callee_ip": c.callee_ip,
        "user_agent": c.user_agent,
        "state": c.state,
        "final_status": c.final_status,
        "final_reason": c.final_reason,
        "failure_class": c.failure_class,
        "reason_header": c.reason_header,
        "hangup_by": c.hangup_by,
        "category": c.category,
        "problems": list(c.problems),
        "problem": c.category != "ok",
        "duration_s": c.duration_s,
        "post_dial_delay_ms": c.post_dial_delay_ms,
        "setup_time_ms": c.setup_time_ms,
        "codec": c.codecs[0] if c.codecs else None,
        "messages": c.messages,
        "retransmissions": c.retransmissions,
        "unreliable": c.unreliable,
        "closed_by": c.closed_by,
        "first_frame": c.first_frame,
        "worst_mos": c.mos,
        "record": c.model_dump(mode="json"),
    }


#: ``closed_by`` of a call row written from a call-state update: the call is still up, and only
#: another update or the call's record may overwrite the row.
LIVE_CALL = "live"


def live_call_row(u: CallStateUpdate) -> Row:
    """A call in flight: its row from the INVITE on, with what is known so far."""
    return {
        "call_id": u.call_id,
        "start_ts": utc(u.start_ts),
        "answer_ts": None if u.answer_ts is None else utc(u.answer_ts),
        "end_ts": None,
        "method": "INVITE",
        "from_uri": u.from_uri,
        "to_uri": u.to_uri,
        "from_user": uri_user(u.from_uri),
        "to_user": uri_user(u.to_uri),
        "caller_ip": u.caller_ip,
        "callee_ip": u.callee_ip,
        "user_agent": u.user_agent,
        "state": "answered" if u.state == "answered" else "in_progress",
        "category": "ok",
        "problems": list(u.problems),
        "problem": bool(u.problems),
        "post_dial_delay_ms": None if u.ringing_ts is None else (u.ringing_ts - u.start_ts) * 1000.0,
        "setup_time_ms": None if u.answer_ts is None else (u.answer_ts - u.start_ts) * 1000.0,
        "messages": 0,
        "retransmissions": 0,
        "unreliable": False,
        "closed_by": LIVE_CALL,
        "first_frame": u.first_frame,
        "worst_mos": u.mos,
        "record": u.model_dump(mode="json"),
    }


def stream_row(s: StreamRecord) -> Row:
    return {
        "stream_id": stream_key(s),
        "call_id": s.call_id,
        "ssrc": s.ssrc,
        "src_ip": s.src_ip,
        "src_port": s.src_port,
        "dst_ip": s.dst_ip,
        "dst_port": s.dst_port,
        "first_ts": utc(s.first_ts),
        "last_ts": utc(s.last_ts),
        "payload_type": s.payload_type,
        "codec": s.codec,
        "packets": s.packets,
        "expected": s.expected,
        "lost": s.lost,
        "loss_ratio": loss_ratio(s),
        "mean_jitter_ms": s.mean_jitter_ms,
        "max_jitter_ms": s.max_jitter_ms,
        "max_delta_ms": s.max_delta_ms,
        "mos": s.mos,
        "r_factor": s.r_factor,
        "unreliable": s.unreliable,
        "record": s.model_dump(mode="json"),
    }


def interval_row(r: RtpStreamReport) -> Row:
    """An interval (``final=False``) report; MOS as the detector would rate the stream so far."""
    scored = stream_mos(r)
    return {
        "stream_id": stream_key(r),
        "ts": utc(r.last_ts),
        "call_id": r.call_id,
        "packets": r.packets,
        "expected": r.expected,
        "lost": r.lost,
        "loss_ratio": loss_ratio(r),
        "mean_jitter_ms": r.mean_jitter_ms,
        "max_jitter_ms": r.max_jitter_ms,
        "mos": None if scored is None else round(scored[1], 2),
    }


def alert_row(a: Alert) -> Row:
    """Without ``seq``: the writer numbers new alerts in commit order."""
    score = a.details.get("score") if a.rule == "anomalous_call" else None
    return {
        "alert_id": a.alert_id,
        "rule": a.rule,
        "severity": a.severity,
        "category": RULE_CATEGORIES.get(a.rule, "other"),
        "call_id": a.call_id,
        "source_ip": a.source_ip,
        "first_ts": utc(a.first_ts),
        "last_ts": utc(a.last_ts),
        "summary": a.summary,
        "score": float(score) if isinstance(score, int | float) else None,
        "details": dict(a.details),
        "evidence": [e.model_dump(mode="json") for e in a.evidence],
    }


def message_row(m: SipMessageEvent) -> Row:
    """Without ``retransmission``: the writer sets it against the call's earlier stored messages.

    Built once per stored message (the store's hottest loop): the two keys are hashed here
    with the same text as :func:`message_key` and :func:`transaction_key` (tests hold them
    equal), without the calls in between.
    """
    start = m.method if m.is_request else str(m.status_code)
    call_id, src_ip, dst_ip, raw = m.call_id, m.src_ip, m.dst_ip, m.raw
    key = blake2b(
        f"{m.ts}\x1f{m.frame}\x1f{src_ip}\x1f{m.src_port}\x1f{dst_ip}\x1f{m.dst_port}\x1f{call_id}".encode(
            "utf-8", "surrogateescape"
        ),
        digest_size=8,
    )
    if raw:
        key.update(raw)
    txn = blake2b(
        f"{call_id}\x1f{m.via_branch}\x1f{m.cseq_num}\x1f{m.cseq_method}\x1f{start}\x1f{src_ip}\x1f{dst_ip}".encode(
            "utf-8", "surrogateescape"
        ),
        digest_size=8,
    )
    x_cid, session_id, p_charging_vector = correlation_values(raw)
    return {
        "id": int.from_bytes(key.digest(), "big", signed=True),
        "ts": datetime.fromtimestamp(m.ts, UTC),
        "frame": m.frame,
        "call_id": call_id,
        "src_ip": src_ip,
        "src_port": m.src_port,
        "dst_ip": dst_ip,
        "dst_port": m.dst_port,
        "transport": m.transport,
        "is_request": m.is_request,
        "method": m.method,
        "status_code": m.status_code,
        "cseq_num": m.cseq_num,
        "cseq_method": m.cseq_method,
        "from_user": uri_user(m.from_uri),
        "to_user": uri_user(m.to_uri),
        "user_agent": m.user_agent,
        "txn_key": int.from_bytes(txn.digest(), "big", signed=True),
        "first_line": m.first_line,
        "raw": raw,
        "x_cid": x_cid,
        "session_id": session_id,
        "p_charging_vector": p_charging_vector,
    }
