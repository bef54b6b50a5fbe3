#!/usr/bin/env bash
# Measures how long repair takes to restore rf=2 after a peer loses its disk: three peers
# and a router as separate release processes, SIZE_MB of objects put with rf=2 (OBJECT_MB
# each), peer-0 killed with SIGKILL, its data directory wiped, and peer-0 started again on
# the same port. Prints the seconds until the router's repair reports a round with nothing
# left to do, the bytes it copied, and seconds per GB. Loopback only; stops by itself.
# Usage: scripts/repair-time.sh [SIZE_MB] [OBJECT_MB] [RATE]
#        (needs `cargo build --release -p mictlanx-server`; RATE is --repair-rate, default 1GiB)
set -euo pipefail
SIZE_MB=${1:-1024}
OBJECT_MB=${2:-16}
RATE=${3:-1GiB}
BIN=${BIN:-target/release/mictlanx-server}
WORK=$(mktemp -d)
trap 'for f in "$WORK"/*.pid; do kill -9 "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

. "$(dirname "$0")/lib/processes.sh"
json_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

P0=$(start p0 peer --id peer-0 --port 0 --data-dir "$WORK/p0" --capacity 20GB)
P1=$(start p1 peer --id peer-1 --port 0 --data-dir "$WORK/p1" --capacity 20GB)
P2=$(start p2 peer --id peer-2 --port 0 --data-dir "$WORK/p2" --capacity 20GB)
R=$(start router router --id router-0 --port 0 --probe-interval-ms 200 \
      --repair-interval-ms 1000 --repair-rate "$RATE" \
      --peers "mictlanx://peer-0@127.0.0.1:$P0,peer-1@127.0.0.1:$P1,peer-2@127.0.0.1:$P2/?protocol=http")
for _ in $(seq 1 100); do
  curl -s "127.0.0.1:$R/health" | grep -q '"peers_up":3' && break; sleep 0.1
done

COUNT=$((SIZE_MB / OBJECT_MB))
head -c $((OBJECT_MB * 1024 * 1024)) /dev/urandom > "$WORK/base.bin"
for i in $(seq 1 "$COUNT"); do
  # Each object differs (its index in the first bytes), so each is its own copy.
  { printf '%016d' "$i"; tail -c +17 "$WORK/base.bin"; } > "$WORK/obj.bin"
  SUM=$(sha256sum "$WORK/obj.bin" | cut -d' ' -f1)
  SIZE=$(stat -c %s "$WORK/obj.bin")
  TASK=$(curl -s -X POST "127.0.0.1:$R/api/v4/buckets/rep/metadata" -H 'Content-Type: application/json' \
    -d "{\"bucket_id\":\"rep\",\"key\":\"obj$i\",\"ball_id\":\"obj$i\",\"checksum\":\"$SUM\",\"size\":$SIZE,\"producer_id\":\"script\",\"replication_factor\":2}" \
    | sed -n 's/.*"tasks_ids":\["\([^"]*\)".*/\1/p')
  curl -s -f -X POST "127.0.0.1:$R/api/v4/buckets/data/$TASK/chunked" \
    -H 'Content-Type: application/octet-stream' -T "$WORK/obj.bin" -o /dev/null
done
HELD=$(find "$WORK/p0" -type f | wc -l)
echo "put $COUNT objects of $OBJECT_MB MB with rf=2; peer-0 holds $(du -sm "$WORK/p0" | cut -f1) MB"

# Wait for the rounds that follow the puts to settle, then take the counters.
sleep 2
BEFORE=$(curl -s "127.0.0.1:$R/api/v4/repair" | json_field bytes_copied)
kill -9 "$(cat "$WORK/p0.pid")"
rm -rf "$WORK/p0"
T0=$(date +%s.%N)
start p0 peer --id peer-0 --port "$P0" --data-dir "$WORK/p0" --capacity 20GB > /dev/null
ROUNDS0=$(curl -s "127.0.0.1:$R/api/v4/repair" | json_field rounds)
while :; do
  STATUS=$(curl -s "127.0.0.1:$R/api/v4/repair")
  ROUNDS=$(echo "$STATUS" | json_field rounds)
  ACTIONS=$(echo "$STATUS" | json_field last_round_actions)
  RUNNING=$(echo "$STATUS" | grep -o '"running":[a-z]*' | cut -d: -f2)
  # Done: a round that started after the wipe finished with nothing left to do.
  if [ "$ROUNDS" -gt $((ROUNDS0 + 1)) ] && [ "$ACTIONS" = 0 ] && [ "$RUNNING" = false ]; then
    break
  fi
  if [ "$(echo "$(date +%s.%N) - $T0 > 600" | bc)" = 1 ]; then
    echo "repair did not finish in 600 s: $STATUS"; exit 1
  fi
  sleep 0.2
done
T1=$(date +%s.%N)
AFTER=$(echo "$STATUS" | json_field bytes_copied)
COPIED=$((AFTER - BEFORE))
SECS=$(echo "$T1 - $T0" | bc)
echo "peer-0 had $HELD files before the wipe; repair copied $COPIED bytes in $SECS s"
echo "seconds per GB: $(echo "scale=2; $SECS / ($COPIED / 1000000000)" | bc)"
echo "status: $STATUS"
