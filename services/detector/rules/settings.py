"""Every rule threshold in one place, so an operator tunes the catalogue without reading code.

Values come from the constructor or from ``CALLQUAL_RULES_*`` environment
variables (lists as JSON). The defaults are deliberately conservative: a
monitoring pipeline that cries wolf gets switched off, so each default sits
where the literature or common carrier practice says users start to notice.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RuleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLQUAL_RULES_", frozen=True, extra="forbid")

    #: Rule ids to switch off entirely (e.g. ``["sip_flood"]`` on a trunk-only sensor).
    disabled_rules: list[str] = Field(default_factory=list)

    # ------------------------------------------------------------------ quality
    #: Streams shorter than this (packets) are ignored by the quality rules:
    #: below ~1 s of 20 ms audio, MOS, loss ratio and jitter are noise.
    quality_min_packets: int = 50
    #: ITU-T G.107 maps MOS 3.6 to R~70, "some users dissatisfied": the usual
    #: carrier SLA floor.
    low_mos_warning: float = 3.6
    #: MOS 3.1 ~ R 60, "many users dissatisfied".
    low_mos_critical: float = 3.1
    #: low_mos fires only when the network took at least this much MOS off what the codec
    #: gives on a clean path: a low-rate codec's own ceiling (G.726-16 rates ~2.1 with no loss
    #: at all) is a configuration choice, visible in the stream's MOS, not an incident.
    low_mos_min_network_drop: float = 0.1
    #: G.711 with packet-loss concealment degrades audibly above ~1-2 % random loss.
    packet_loss_warning_ratio: float = 0.02
    #: Above 5 % even PLC-heavy codecs (Opus, G.729) become hard to understand.
    packet_loss_critical_ratio: float = 0.05
    #: RFC 3550 interarrival jitter; 30 ms mean is where fixed jitter buffers
    #: (typically 40-60 ms) start discarding late packets.
    jitter_mean_ms: float = 30.0
    #: The RFC 3550 estimator is smoothed (gain 1/16), so a 60 ms peak means a
    #: sustained burst, not one late packet.
    jitter_max_ms: float = 60.0
    #: Calls shorter than this (answer to end, seconds) are not judged for
    #: missing or one-way media: early hang-ups legitimately carry little RTP.
    media_min_duration_s: float = 2.0
    #: One-way audio when the weaker direction carries less than this share of
    #: the stronger one's packets (silence suppression alone stays above ~10 %
    #: because of comfort-noise and keep-alive packets).
    one_way_min_ratio: float = 0.05
    #: Mid-call one-way audio: one direction silent this long (seconds) while the other flowed
    #: after it had sent at its own ptime without a pause (continuous, see
    #: ``live_one_way_continuous_s``; ``sender_pace``). The collector reports a call whose
    #: direction fell quiet every ``quiet_report_interval_s``, so the alert follows within ~2 s.
    live_one_way_quiet_s: float = 3.0
    #: A stream that sent this long without a pause does not suppress silence: a talker's
    #: first spurt can last 5 s, hardly 10 s without a breath.
    live_one_way_continuous_s: float = 10.0
    #: A shorter unbroken spell (at least ``live_one_way_brief_min_s``) from a sender that cannot
    #: suppress silence (no comfort noise in its SDP or stream, no DTX pause: ``sender_pace``):
    #: 8 s of silence then, a pause no such sender makes, yet longer than any network hiccup.
    live_one_way_brief_min_s: float = 3.0
    live_one_way_brief_quiet_s: float = 8.0
    #: ... when that direction paused before (silence suppression, a listener's spurts), sent too
    #: briefly to tell, or may suppress silence: a listener may stay quiet for a while, so a stop
    #: is called only after this long.
    live_one_way_pausing_quiet_s: float = 15.0
    #: ... and when that direction never sent a packet since answer: a UA starts its RTP at
    #: answer even with silence suppression (comfort noise), so a shorter wait is as safe.
    live_one_way_never_s: float = 3.0
    #: Mid-call no media: a collector report tick this long after answer without one stream
    #: report for the call. With 10 s intervals the alert comes 3-13 s after answer.
    live_no_media_after_s: float = 3.0
    #: Mid-call heavy loss: loss over one interval report (at least ``quality_min_packets``
    #: expected) above this ratio; lower, and one bursty interval would cry wolf.
    live_packet_loss_ratio: float = 0.05
    #: Q.850 causes in a BYE's Reason header that mean an ordinary hang-up
    #: (16 normal clearing, 31 normal unspecified).
    dropped_call_normal_q850_causes: list[int] = Field(default_factory=lambda: [16, 31])
    #: An answered call still open when the capture ended counts as dropped only if neither
    #: SIP nor media had been seen for this long: RTP stops within a packet time of a real
    #: hang-up, and 30 s is far beyond any silence suppression or re-INVITE pause.
    dropped_call_silence_s: float = 30.0
    #: Post-dial delay (INVITE to first 180/183) above 5 s makes callers hang
    #: up or redial; ITU-T E.721 targets are well below that.
    post_dial_delay_warning_ms: float = 5000.0
    #: Two or more retransmissions mean a lost request or response (one can be
    #: a timer race with a slow proxy).
    sip_retransmissions_min: int = 2
    #: Payload types ignored by ``codec_mismatch`` even when not negotiated:
    #: 13 (CN) and 19 (old CN) are often sent unannounced and are harmless.
    codec_mismatch_ignored_payload_types: list[int] = Field(default_factory=lambda: [13, 19])
    #: Encodings that never count as a mismatch when they were negotiated.
    codec_mismatch_ignored_encodings: list[str] = Field(default_factory=lambda: ["telephone-event", "cn"])

    # ----------------------------------------------------------------- failures
    #: Alert on busy (486/600), cancelled (487) and declined (603) calls too.
    #: Off by default: these are the callee's choice, not a fault.
    call_failed_alert_user_outcomes: bool = False

    # ----------------------------------------------------------------- security
    #: Per-source tables (scanner, brute force, flood, malformed, toll-fraud
    #: accounts) hold at most this many keys; the least recently seen is evicted.
    max_sources: int = 10_000
    #: A key unseen for this long (capture time) is forgotten.
    source_idle_s: float = 600.0
    #: Sources exempt from the sweep, flood and brute-force heuristics
    #: (CIDRs): carrier SBCs legitimately send many requests to many users.
    trusted_networks: list[str] = Field(default_factory=list)
    #: Evidence messages kept per alert.
    evidence_limit: int = 5
    #: An incident (one alert) lasts while the source stays active; it ends
    #: after this much quiet, and a later burst raises a new alert.
    incident_quiet_s: float = 300.0

    #: Case-insensitive substrings of User-Agent headers of known attack tools.
    #: Chosen from tools whose only practical use is scanning/cracking and that
    #: dominate VoIP honeypot logs. Deliberately NOT listed: sipsak and
    #: sipp (admins' test tools), Ozeki and Zoiper (legitimate SDK/softphone).
    scanner_user_agents: list[str] = Field(
        default_factory=lambda: [
            "friendly-scanner",  # SIPVicious svmap/svwar/svcrack default
            "sipvicious",
            "sipcli",  # SIPCLI, used by mass scanners
            "sip-scan",
            "sipscan",
            "sundayddr",  # "sundayddr" worm
            "iwar",  # iWar war dialler
            "sivus",  # SiVuS scanner
            "vaxsipuseragent",  # VaxVoIP SDK default UA, seen almost only in attacks
            "pplsip",  # seen in honeypot REGISTER/INVITE floods
            "siparmyknife",
        ]
    )
    #: Sweep detection window (seconds, sliding).
    scanner_window_s: float = 60.0
    #: Distinct To-users that a source targeted without ever reaching them
    #: (no 180/183/2xx/486/487/600/603). 30/min is far above a NAT of phones
    #: refreshing registrations (those get 200s) but a slow svwar run exceeds it.
    scanner_distinct_users: int = 30
    #: Host sweep: distinct targets (address:port) a source sent out-of-dialog
    #: OPTIONS/REGISTER/INVITE to and that never answered, within the window.
    #: svmap-style scans probe whole ranges where nearly nothing answers; a
    #: proxy pinging its phones gets answers, and targets that contacted the
    #: source first (registered phones, peers) never count.
    scanner_silent_targets: int = 10
    #: A target counts as silent when no response came back within this time
    #: (a live SIP host answers OPTIONS in milliseconds; UACs retransmit at 0.5 s).
    scanner_answer_timeout_s: float = 5.0

    #: Brute-force window (seconds, sliding).
    bruteforce_window_s: float = 60.0
    #: 401/403 answers to one source's REGISTERs within the window.
    bruteforce_min_failures: int = 10
    #: ... and their share among final REGISTER answers: a healthy client sees
    #: one 401 per 200 (50 %), a password guesser sees almost only failures.
    bruteforce_min_failure_ratio: float = 0.8
    #: ... and failures per distinct username: a guesser retries the same few accounts, while an
    #: extension enumeration (svwar against a registrar that answers 401 to every user) collects
    #: one failure per username; that is the scanner rule's incident, not a password attack.
    bruteforce_min_failures_per_user: float = 2.0
    #: Statuses that count as a failed authentication.
    bruteforce_statuses: list[int] = Field(default_factory=lambda: [401, 403, 407])

    #: Flood window (seconds, sliding).
    flood_window_s: float = 10.0
    #: Methods counted by the flood rule.
    flood_methods: list[str] = Field(default_factory=lambda: ["INVITE", "REGISTER", "OPTIONS"])
    #: Requests from one source per window: 300/10 s = 30 req/s, above a busy
    #: enterprise PBX, below any DoS tool.
    flood_per_source: int = 300
    #: Requests from all sources together per window.
    flood_total: int = 3000

    #: Recent SIP transactions remembered to recognise a proxy's relayed copies (``rules/relay.py``):
    #: 2 s of a 10,000 requests/s flood; a proxy relays within milliseconds.
    relay_max_transactions: int = 20_000
    #: A relayed copy follows its original within a transaction's life (RFC 3261 Timer B/F: 32 s).
    relay_window_s: float = 32.0

    #: International access codes, combined with ``toll_fraud_destinations``.
    toll_fraud_access_codes: list[str] = Field(default_factory=lambda: ["+", "00", "011"])
    #: Country/network codes abused for international revenue share fraud:
    #: the satellite and international networks (881/882/883) and premium-rate
    #: international ranges (979). Add your own high-risk countries.
    toll_fraud_destinations: list[str] = Field(default_factory=lambda: ["881", "882", "883", "979"])
    #: Full dialled-number prefixes that are always suspicious (e.g. national premium "0900").
    toll_fraud_prefixes: list[str] = Field(default_factory=list)
    #: Concurrent calls up (answered, or ringing long enough) per account (From user) before we alert.
    toll_fraud_max_concurrent: int = 10
    #: A call ringing this long counts as up: a real attempt, not a refusal within milliseconds.
    toll_fraud_ring_min_s: float = 2.0
    #: A call with no end seen is forgotten after this long (capture time).
    toll_fraud_call_max_age_s: float = 7200.0
    #: Tumbling bucket (seconds) for the per-account calls baseline.
    toll_fraud_bucket_s: float = 3600.0
    #: Buckets of history needed before the spike test applies.
    toll_fraud_min_history: int = 3
    #: Spike: calls in the current bucket >= factor x the account's EWMA baseline ...
    toll_fraud_spike_factor: float = 5.0
    #: ... and at least this many calls (an account going from 1 to 5 calls is not fraud).
    toll_fraud_spike_min_calls: int = 20
    #: EWMA weight of the newest bucket.
    toll_fraud_ewma_alpha: float = 0.3

    #: Malformed-SIP window (seconds, sliding).
    malformed_window_s: float = 60.0
    #: Parse errors from one source within the window: fuzzers and broken
    #: scanners send bursts, a buggy phone sends a few.
    malformed_min_errors: int = 10

    #: A security alert marks its source as suspicious for calls starting
    #: within this many seconds after the alert's last event.
    suspicious_source_ttl_s: float = 3600.0
