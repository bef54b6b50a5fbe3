#!/usr/bin/env bash
# Smoke test of the original MictlanX Python client (0.1.0a5) against our router: starts a
# local cluster (`mictlanx-server cluster`, 3 peers, loopback, any free port), waits until
# the router sees every peer, runs scripts/python-smoke.py through ../shared/pyref/python
# (which builds its virtual environment from PyPI on first use), then stops the cluster and
# removes its data. The exit code is the Python script's.
#
# Usage: bash scripts/python-smoke.sh
#   MICTLANX_SERVER_BIN=path  use that binary (else `cargo build -p mictlanx-server` first)
#   PYREF=path                the launcher (default ../shared/pyref/python)
#   SMOKE_PEERS=N             number of peers (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=${SMOKE_PEERS:-3}
PYREF=${PYREF:-../shared/pyref/python}
T_START=$(date +%s)

if [ ! -x "$PYREF" ]; then
    echo "python-smoke: $PYREF not found (the shared pyref checkout must sit beside the repo)" >&2
    exit 1
fi

# The launcher makes its venv with `python3 -m venv`; Debian splits that (and ensurepip) out.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "python-smoke: installing python3-venv" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    else
        echo "python-smoke: python3 cannot make virtual environments (install python3-venv)" >&2
        exit 1
    fi
fi

# The server binary: MICTLANX_SERVER_BIN when given (.ci/run passes the one `cargo test
# --workspace` has just built), else a debug build of the server package alone.
if [ -n "${MICTLANX_SERVER_BIN:-}" ]; then
    BIN=$MICTLANX_SERVER_BIN
else
    cargo build -p mictlanx-server --bin mictlanx-server
    BIN=target/debug/mictlanx-server
fi
if [ ! -x "$BIN" ]; then
    echo "python-smoke: no server binary at $BIN" >&2
    exit 1
fi

WORK=$(mktemp -d)
CLUSTER_PID=
PY_PID=
cleanup() {
    if [ -n "$PY_PID" ]; then
        kill "$PY_PID" 2>/dev/null || true
        wait "$PY_PID" 2>/dev/null || true
    fi
    if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill "$CLUSTER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$CLUSTER_PID" 2>/dev/null || true
        wait "$CLUSTER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Loopback only: keep proxies out of the Python client's way (httpx honours *_proxy).
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

# A plain http cluster without tokens, whatever MICTLANX_* the caller's environment holds.
unset MICTLANX_AUTH_TOKENS MICTLANX_CLUSTER_TOKEN MICTLANX_CLUSTER_TOKEN_FILE MICTLANX_TLS_CERT \
    MICTLANX_TLS_KEY MICTLANX_CA_FILE MICTLANX_PROTECT_METRICS MICTLANX_CAPACITY MICTLANX_URI
"$BIN" cluster --peers "$PEERS" --port 0 --data-dir "$WORK/data" \
    > "$WORK/cluster.out" 2> "$WORK/cluster.err" &
CLUSTER_PID=$!

URI=
for _ in $(seq 1 300); do # up to 30 s for the first line
    # (the background job opens cluster.out itself, so it may not exist yet)
    # The first line is `export MICTLANX_URI='...'`.
    URI=$(sed -n "1s/^export MICTLANX_URI='\(.*\)'\$/\1/p" "$WORK/cluster.out" 2>/dev/null || true)
    [ -n "$URI" ] && break
    if ! kill -0 "$CLUSTER_PID" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ -z "$URI" ]; then
    echo "python-smoke: the cluster did not print MICTLANX_URI; its stderr:" >&2
    tail -n 30 "$WORK/cluster.err" >&2
    exit 1
fi
PORT=$(echo "$URI" | sed -n 's/^mictlanx:\/\/[^,\/]*:\([0-9]*\).*/\1/p')
echo "python-smoke: cluster pid $CLUSTER_PID, $URI"

health() { # the router's /health body, or nothing
    if command -v curl >/dev/null 2>&1; then
        curl -s --max-time 2 "http://127.0.0.1:$PORT/health" || true
    else
        python3 -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=2).read().decode())' \
            "http://127.0.0.1:$PORT/health" 2>/dev/null || true
    fi
}
HEALTH=
for _ in $(seq 1 300); do # up to 30 s for every peer to answer the router's probe
    HEALTH=$(health)
    echo "$HEALTH" | grep -q "\"peers_up\":$PEERS\b" && break
    HEALTH=
    sleep 0.1
done
if [ -z "$HEALTH" ]; then
    echo "python-smoke: the router never reported peers_up $PEERS; last /health:" >&2
    echo "$(health)" >&2
    tail -n 30 "$WORK/cluster.err" >&2
    exit 1
fi
echo "python-smoke: router /health: $HEALTH"

# In the background and waited for, so that a signal to this script is handled at once.
MICTLANX_URI=$URI MICTLANX_LOG_PATH="$WORK/pylog" timeout 900 "$PYREF" scripts/python-smoke.py &
PY_PID=$!
CODE=0
wait "$PY_PID" || CODE=$?
PY_PID=
if [ "$CODE" != 0 ]; then
    echo "python-smoke: FAILED (exit $CODE); the cluster's last log lines:" >&2
    tail -n 40 "$WORK/cluster.err" >&2
fi
echo "python-smoke: took $(( $(date +%s) - T_START )) s" >&2
exit "$CODE"
