#!/bin/sh
# Makes the benchmark capture: CALLS concurrent G.711 calls for DURATION seconds
# (defaults 200 x 60 s = ~1.2 M packets, ~280 MB) plus its labels, under bench/out/
# (git-ignored). Same SEED, same bytes. Usage:
#   bench/make_load_capture.sh [CALLS] [DURATION] [SEED]
set -eu
cd "$(dirname "$0")/.."
CALLS=${1:-200}
DURATION=${2:-60}
SEED=${3:-1}
mkdir -p bench/out
python - "$CALLS" "$DURATION" "$SEED" <<'PY'
import sys
import time
from pathlib import Path

from callqual.simulator import simulate, write_labels

calls, duration, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
out = Path("bench/out/load.pcap")
start = time.perf_counter()
labels = simulate("load", out, seed=seed, calls=calls, duration=duration)
elapsed = time.perf_counter() - start
write_labels(labels, out.with_suffix(".labels.json"))
print(
    f"{out}: {labels.packets} packets ({labels.rtp_packets} RTP, {labels.rtcp_packets} RTCP, "
    f"{labels.sip_packets} SIP), {out.stat().st_size / 1e6:.0f} MB in {elapsed:.1f} s "
    f"= {labels.packets / elapsed:,.0f} packets/s"
)
PY
