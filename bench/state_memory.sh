#!/usr/bin/env bash
# Peak memory and checkpoint size of sluice for many distinct words: LINES lines of 10 words never seen before
# (LINES x 10 distinct words), read to the end (SLUICE_STOP_AT_END) with the release build, against the mock broker
# in its own process. Usage: bench/state_memory.sh [LINES]   (default 200000 lines: 2 M distinct words)
set -euo pipefail
lines=${1:-200000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $broker 2>/dev/null || true; rm -rf "$work"' EXIT
mkfifo "$work/hold"
"$root/.build/debug/sluice-broker" --topic lines:4 --topic word-counts:4 --topic word-counts-windowed:4 \
    < "$work/hold" > "$work/broker.out" & broker=$!
exec 3> "$work/hold"
until [ -s "$work/broker.out" ]; do sleep 0.1; done
bootstrap=$(sed -n 's/^bootstrap=//p' "$work/broker.out")
python3 -c "
import sys
for i in range(int(sys.argv[1])):
    print(' '.join('u%09d' % (i * 10 + j) for j in range(10)))
" "$lines" > "$work/lines.txt"
kcat -P -b "$bootstrap" -t lines -l "$work/lines.txt"
KAFKA_BOOTSTRAP_SERVERS=$bootstrap SLUICE_CHECKPOINT_DIR=$work/data SLUICE_GROUP_ID=state-memory \
    SLUICE_STOP_AT_END=true SLUICE_HTTP_PORT=0 \
    /usr/bin/time -v "$root/.build/release/sluice" > /dev/null 2> "$work/sluice.err"
echo "distinct words: $((lines * 10)) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/sluice.err" | sed 's/^\s*/  /'
echo "  checkpoints (bytes): $(stat -c %s "$work"/data/checkpoints/*.ckp | tr '\n' ' ')"
