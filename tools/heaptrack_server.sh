#!/usr/bin/env bash
# Runs the server binary under heaptrack, keeping its pid, so that a benchmark that starts
# the binary itself profiles it in place:
#
#   cargo build --release --bin gezinsdossier --no-default-features   # glibc's malloc
#   cp target/release/gezinsdossier /tmp/gezinsdossier-glibc
#   GZD_HEAPTRACK_BIN=/tmp/gezinsdossier-glibc GZD_BENCH_SERVER_BIN=$PWD/tools/heaptrack_server.sh \
#     target/release/deps/memory-<hash> --events 2000000 --families 20000
#   heaptrack_print -f /tmp/heaptrack-server-<n>.zst -F stacks.txt --flamegraph-cost-type peak
#
# heaptrack hooks malloc, so the binary must be built without mimalloc (the default
# feature). Each start of the server writes a file of its own.
set -euo pipefail
bin=${GZD_HEAPTRACK_BIN:?the server binary built with --no-default-features}
out=${GZD_HEAPTRACK_DIR:-/tmp}/heaptrack-server-$(date +%s%N)
mkfifo "$out.fifo"
/usr/lib/heaptrack/libexec/heaptrack_interpret <"$out.fifo" | zstd -q >"$out.zst" &
exec env LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT="$out.fifo" "$bin" "$@"
