"""Fuzzing the whole pipeline: mutated capture frames in, every output format out.

:mod:`~callqual.fuzz.mutators` breaks frames the way wire, capture and attacker
break them (bit flips, random bytes, truncation, header length/offset fields at
0 or all-ones, SIP header lines cut or doubled, a wrong Content-Length, non-UTF-8
bytes in SIP), and :mod:`~callqual.fuzz.driver` pushes the result through the
path a production deployment takes: decode -> collector events -> their Kafka
encoding -> the detector's decoding -> rules -> the JSON report -> the alerter's
decoding -> notification payloads. A crash is any exception out of that path.

Why hypothesis, not atheris: hypothesis is already a test dependency and runs
on any CPython, where atheris needs a clang-built wheel and an instrumented
interpreter. Our mutations are structure-aware (the harness knows where an IP
or RTP length field sits), which is where coverage guidance helps least; what
matters more is hypothesis' shrinking: a failing plan of dozens of mutations
shrinks to the one (frame, mutator, seed) that crashes, and the failure is
stored and replayed first on the next run. The bench (``bench/bench_fuzz.py``)
draws the same kind of plans from a seeded ``random.Random`` instead, for speed.
"""
