"""Errors raised by the pure decoding layers.

Every error carries a short, stable ``reason`` (e.g. ``'sip.no_call_id'``)
which callers count; error handling is by type and reason, never by message
text::

    DecodeError
     ├── CaptureFormatError   the file is not a capture we can read (fatal for that file)
     ├── PacketDecodeError    one frame could not be decoded below the transport layer
     └── SipParseError        a payload that looked like SIP is not valid SIP
          └── SdpParseError   an SDP body is malformed
"""


class DecodeError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CaptureFormatError(DecodeError):
    pass


class PacketDecodeError(DecodeError):
    pass


class SipParseError(DecodeError):
    pass


class SdpParseError(SipParseError):
    pass
