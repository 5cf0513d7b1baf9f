#!/usr/bin/env bash
# Interleaved A/B of durable appends through gRPC: two builds of the server, in turn, each on
# a fresh data directory, driven by the side-by-side harness's closed-loop load generator
# (one ~500-byte event per call, as in ../shared/bench-peers). Prints one line per run with
# events/s, p50, p99 and the server's CPU time per acknowledged event (user + system, from
# /proc, start-up and warm-up included), then the medians per build.
#
#   tools/ab_append.sh BASE_BIN NEW_BIN [ROUNDS] [CLIENTS] [SECONDS]     (MODES="distinct hot")
#
# Build the base in a worktree with a target directory of its own, or run
# `cargo clean --release -p gezinsdossier-ledger -p gezinsdossier-services` between the two builds:
# cargo takes a build of the same workspace from another checkout as fresh, and then hands
# back the base's binary as the new one. Compare the two binaries' checksums before a run.
#
# The load generator is built once with:
#   GZD_PROTO_DIR=$PWD/proto CARGO_TARGET_DIR=/tmp/gzd-perf-loadgen-target \
#     cargo build --release --manifest-path ../shared/bench-peers/loadgen/Cargo.toml
set -euo pipefail
BASE=$1 NEW=$2 ROUNDS=${3:-3} CLIENTS=${4:-64} SECONDS_PER_RUN=${5:-4}
MODES=${MODES:-"distinct hot"}
LOADGEN=${LOADGEN:-/tmp/gzd-perf-loadgen-target/release/perf-loadgen}
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT

run() { # label binary mode
  local dir port pid out user sys
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$2" serve --insecure-dev --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
  pid=$!
  sleep 1.5
  out=$("$LOADGEN" --addr "127.0.0.1:$port" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" --warmup 1 \
    --mode "$3" --payload 500 --max-connections 64 --label "$1" --target gzd --org ggz-delfland 2>/dev/null)
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ user sys _ <"/proc/$pid/stat"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  python3 - "$out" "$user" "$sys" "$1" <<'EOF' | tee -a "$RESULTS"
import json, os, sys
run = json.loads(sys.argv[1])
cpu_s = (int(sys.argv[2]) + int(sys.argv[3])) / os.sysconf("SC_CLK_TCK")
print(json.dumps({"label": sys.argv[4], "mode": run["mode"], "clients": run["clients"],
                  "events_per_s": round(run["events_per_s"]), "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"],
                  "cpu_us_per_event": round(1e6 * cpu_s / run["total_ok"])}))
EOF
}

echo "load average before: $(cut -d' ' -f1 /proc/loadavg)"
for _ in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    run base "$BASE" "$mode"
    run new "$NEW" "$mode"
  done
done
echo "load average after: $(cut -d' ' -f1 /proc/loadavg)"
python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for mode in dict.fromkeys(r["mode"] for r in rows):
    medians = {}
    for label in ("base", "new"):
        runs = [r for r in rows if r["mode"] == mode and r["label"] == label]
        medians[label] = {k: statistics.median(r[k] for r in runs) for k in ("events_per_s", "p50_ms", "p99_ms", "cpu_us_per_event")}
        print(f"{mode:>8} {label:>4}: {medians[label]}")
    print(f"{mode:>8} new/base events/s: {medians['new']['events_per_s'] / medians['base']['events_per_s']:.2f}")
EOF
