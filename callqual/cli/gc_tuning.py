"""Cyclic garbage collection tuned for a pipeline that allocates millions of short-lived objects.

Nearly everything the analysis allocates (parsed messages, events, per-packet
tuples) is freed by reference counting the moment it is done with; the cyclic
collector still scans the young generation every 700 container allocations and
the older ones as the report's records pile up, about a fifth of the time on a
signalling-only capture (issue 14, ``bench/RESULTS.md``). Objects loaded at
start-up (modules, schemas) are frozen out of every scan, and the young
generation is scanned every 200,000 allocations instead: cycles are still
collected, later. At 50,000 the detector still spent ~7 % of its CPU scanning the
SIP events its open calls keep (sip.pcap: 10 scans of ~35 ms, and no cyclic
garbage found); 200,000 leaves 2. The CLI sets this for ``analyze``; the pure
modules never do.
"""

import gc

#: (young, middle, old) thresholds: the young generation is scanned every this many allocations
THROUGHPUT_THRESHOLDS = (200_000, 20, 100)


def tune_gc_for_throughput() -> None:
    """Freeze what is loaded so far and scan for cycles less often (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THROUGHPUT_THRESHOLDS)


def spare_the_exit_collection() -> None:
    """Freeze what is still alive, once the command's work is done: exit then frees it unscanned.

    At exit CPython runs one more full collection over every tracked object. After an analysis
    that is the cyclic garbage the rarer scans above left behind and whatever the report held:
    ~0.1 s on a 30,000-call capture (bench/RESULTS.md, session 8) spent finding what the end of
    the process releases anyway.
    """
    gc.freeze()
