#!/usr/bin/env bash
# Alternating rounds of `mictlanx bench` for two builds on the same machine in the same run,
# so that the comparison is a ratio and not two figures from different minutes.
# Usage: scripts/bench-against.sh BEFORE_BIN AFTER_BIN [ROUNDS]
#   SCENARIOS="get-large:1 put-large:1" picks the scenarios (scenario:peers, spaces between);
#   the default is the small-object set below.
#   e.g. git worktree add /tmp/before 49d42c7 &&
#        (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release -p mictlanx-cli) &&
#        cargo build --release -p mictlanx-cli &&
#        scripts/bench-against.sh /tmp/before-target/release/mictlanx target/release/mictlanx
# Prints one line per run (round, build, scenario, peers, the bench's JSON line), then the
# ops/s of each pair and their ratio. Each bench starts and stops its own LocalCluster.
set -euo pipefail
BEFORE=$1
AFTER=$2
ROUNDS=${3:-3}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
run() { # ROUND SCENARIO PEERS
  for who in before after; do
    local bin=$BEFORE
    [ "$who" = after ] && bin=$AFTER
    echo "round=$1 bin=$who scenario=$2 peers=$3 $("$bin" bench "$2" --peers "$3" --json 2>/dev/null | tail -1)"
  done
}
SCENARIOS=${SCENARIOS:-"get-small:3 put-small:1 put-small:3 put-small:8 get-small:1"}
for round in $(seq 1 "$ROUNDS"); do
  for sp in $SCENARIOS; do run "$round" "${sp%%:*}" "${sp##*:}"; done
done | tee "$OUT"
python3 - "$OUT" <<'PY'
import collections, json, re, sys
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    m = re.match(r'round=(\d+) bin=(\w+) scenario=(\S+) peers=(\d+) (\{.*\})', line)
    if m:
        r, b, s, p, j = m.groups()
        j = json.loads(j)
        rows[(s, int(p))].setdefault(int(r), {})[b] = j.get('mb_per_s') if s.endswith('-large') else j['ops_per_s']
for (s, p), by_round in sorted(rows.items()):
    pairs = [f"{d['before']:.0f} -> {d['after']:.0f} ({d['after'] / d['before']:.2f})"
             for _, d in sorted(by_round.items()) if 'before' in d and 'after' in d]
    print(f"{s} peers={p}: " + "; ".join(pairs))
PY
