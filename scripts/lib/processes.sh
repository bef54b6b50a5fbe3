# Shared by the measurement scripts: start `mictlanx-server` processes in $WORK and read
# the port each one prints. Needs $BIN (the binary) and $WORK (a scratch directory whose
# *.pid files the caller's EXIT trap kills).

# start NAME ARGS... : starts `$BIN ARGS...` in the background, prints the port it listens on
start() {
  local name=$1; shift
  "$BIN" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  echo $! > "$WORK/$name.pid"
  for _ in $(seq 1 200); do
    grep -q LISTENING "$WORK/$name.out" 2>/dev/null && break; sleep 0.05
  done
  sed -n 's/LISTENING .*:\([0-9]*\)$/\1/p' "$WORK/$name.out"
}
