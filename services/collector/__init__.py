"""The collector: capture sources, packet decoding, SIP parsing, RTP/RTCP stream tracking.

Everything here but ``capture/`` and ``service/`` is pure: it works on
``(timestamp, bytes)`` and emits typed events into a sink.
"""
