#!/usr/bin/env bash
# Measures the peak memory (VmHWM) of a router and two peers while one 1 GiB object is
# uploaded through the router with rf=2 and read back. Loopback only; stops by itself.
# Usage: scripts/memory-flat.sh [SIZE_MB]   (needs a release build of mictlanx-server)
set -euo pipefail
SIZE_MB=${1:-1024}
BIN=${BIN:-target/release/mictlanx-server}
WORK=$(mktemp -d)
trap 'for f in "$WORK"/*.pid; do kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

. "$(dirname "$0")/lib/processes.sh"
hwm() { awk '/VmHWM/ {print $2}' "/proc/$(cat "$WORK/$1.pid")/status"; }

P0=$(start p0 peer --id peer-0 --port 0 --data-dir "$WORK/p0" --capacity 10GB)
P1=$(start p1 peer --id peer-1 --port 0 --data-dir "$WORK/p1" --capacity 10GB)
R=$(start router router --id router-0 --port 0 --probe-interval-ms 200 \
      --peers "mictlanx://peer-0@127.0.0.1:$P0,peer-1@127.0.0.1:$P1/?protocol=http")
for _ in $(seq 1 100); do
  curl -s "127.0.0.1:$R/health" | grep -q '"peers_up":2' && break; sleep 0.1
done
echo "idle VmHWM kB: router $(hwm router) peer-0 $(hwm p0) peer-1 $(hwm p1)"

head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$WORK/big.bin"
SUM=$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
SIZE=$(stat -c %s "$WORK/big.bin")
TASK=$(curl -s -X POST "127.0.0.1:$R/api/v4/buckets/mem/metadata" -H 'Content-Type: application/json' \
  -d "{\"bucket_id\":\"mem\",\"key\":\"big\",\"ball_id\":\"big\",\"checksum\":\"$SUM\",\"size\":$SIZE,\"producer_id\":\"script\",\"replication_factor\":2}" \
  | sed -n 's/.*"tasks_ids":\["\([^"]*\)".*/\1/p')
T0=$(date +%s.%N)
curl -s -X POST "127.0.0.1:$R/api/v4/buckets/data/$TASK/chunked" -H 'Content-Type: application/octet-stream' \
  -T "$WORK/big.bin" -o "$WORK/put.json"
T1=$(date +%s.%N)
curl -s "127.0.0.1:$R/api/v4/buckets/mem/big" -o "$WORK/back.bin"
T2=$(date +%s.%N)
BACK=$(sha256sum "$WORK/back.bin" | cut -d' ' -f1)
echo "put: $(cat "$WORK/put.json")"
echo "size ${SIZE} bytes; put $(echo "$T1 - $T0" | bc) s; get $(echo "$T2 - $T1" | bc) s; read back identical: $([ "$SUM" = "$BACK" ] && echo yes || echo NO)"
echo "peak VmHWM kB after 1 put + 1 get: router $(hwm router) peer-0 $(hwm p0) peer-1 $(hwm p1)"
