"""The rule catalogue: every rule id, in evaluation order, and how to build them from settings.

The order is part of the contract: alerts for one call or event come out
in this order, which keeps outputs (and tests) stable.
"""

from callqual.detector.rules.base import (
    SECURITY_RULES,
    CallRule,
    SourceRule,
    evidence_from,
    make_alert_id,
    uri_user,
)
from callqual.detector.rules.call_failed import CallFailed
from callqual.detector.rules.codec_mismatch import CodecMismatch
from callqual.detector.rules.dropped_call import DroppedCall
from callqual.detector.rules.failure_classes import FailureClass, failure_class
from callqual.detector.rules.high_jitter import HighJitter
from callqual.detector.rules.long_post_dial_delay import LongPostDialDelay
from callqual.detector.rules.low_mos import LowMos
from callqual.detector.rules.malformed_sip import MalformedSip
from callqual.detector.rules.no_media import NoMedia
from callqual.detector.rules.one_way_audio import OneWayAudio
from callqual.detector.rules.packet_loss import PacketLoss
from callqual.detector.rules.register_bruteforce import RegisterBruteforce
from callqual.detector.rules.sdp_private_address import SdpPrivateAddress
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.rules.sip_flood import SipFlood
from callqual.detector.rules.sip_retransmissions import SipRetransmissions
from callqual.detector.rules.sip_scanner import SipScanner
from callqual.detector.rules.toll_fraud import TollFraud

CALL_RULES: tuple[type[CallRule], ...] = (
    CallFailed,
    NoMedia,
    OneWayAudio,
    LowMos,
    PacketLoss,
    HighJitter,
    CodecMismatch,
    SdpPrivateAddress,
    DroppedCall,
    LongPostDialDelay,
    SipRetransmissions,
)

SOURCE_RULES: tuple[type[SourceRule], ...] = (
    SipScanner,
    RegisterBruteforce,
    SipFlood,
    TollFraud,
    MalformedSip,
)

RULE_IDS: tuple[str, ...] = tuple(r.id for r in CALL_RULES) + tuple(r.id for r in SOURCE_RULES)


def _check_disabled(settings: RuleSettings) -> None:
    unknown = set(settings.disabled_rules) - set(RULE_IDS)
    if unknown:
        raise ValueError(f"unknown rule ids in disabled_rules: {sorted(unknown)}")


def build_call_rules(settings: RuleSettings) -> list[CallRule]:
    _check_disabled(settings)
    return [r(settings) for r in CALL_RULES if r.id not in settings.disabled_rules]


def build_source_rules(settings: RuleSettings) -> list[SourceRule]:
    _check_disabled(settings)
    return [r(settings) for r in SOURCE_RULES if r.id not in settings.disabled_rules]


__all__ = [
    "CALL_RULES",
    "RULE_IDS",
    "SECURITY_RULES",
    "SOURCE_RULES",
    "CallRule",
    "FailureClass",
    "MalformedSip",
    "RuleSettings",
    "SourceRule",
    "build_call_rules",
    "build_source_rules",
    "evidence_from",
    "failure_class",
    "make_alert_id",
    "uri_user",
]
