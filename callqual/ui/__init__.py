"""The web UI over the call store: pages, the SIP ladder, exports (issue #13)."""
