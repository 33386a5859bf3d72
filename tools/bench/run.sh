#!/usr/bin/env bash
# `make bench` (QUICK=1: `make bench QUICK=1`): issue 10's benchmark. Runs this system and
# mosquitto with the same scenarios, alternating (ours, mosquitto, ours, mosquitto), each
# run on a fresh server process and a fresh data directory, and prints the table of the
# issue's 8 targets (also written to build/bench/results.md, with every run's figures; the
# clients' full output is kept in build/bench/logs/). Needs the Release tree built
# (vartalapctl, vartalapd, vartalap-loadgen, vartalap-mqtt-bench), mosquitto, and perf
# (linux-perf; without it system calls are not counted and context switches come from
# /proc). The Makefile's `bench` target installs and builds these first. Bash only.
#
# Environment: QUICK=1 (fewer and shorter runs, smaller counts; the output says so),
# BENCH_ROWS (default "1 2 3 4 5 6 7 8": the rows to run; row 6 needs rows 1 and 2),
# BUILD_DIR (default build/release), BENCH_PORT_OFFSET (default 10000: the shipped
# topologies' ports plus this, so a developer's `make run` does not collide; mosquitto
# listens on 1883 plus it).
#
# The workload (issue 10, "Where it stands"): P pairs, each sender keeps W messages in
# flight, 64-byte text; the recipient answers every message with a `delivered` receipt to
# the sender, which counts the message when the receipt arrives. MQTT: QoS 1 both ways, the
# receipt a publish back to the sender; mosquitto with `persistence true`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build/release}
BIN=$ROOT/$BUILD_DIR/tools
QUICK=${QUICK:-0}
OFFSET=${BENCH_PORT_OFFSET:-10000}
OUT=$ROOT/build/bench
LOGS=$OUT/logs
MQTT_PORT=$((1883 + OFFSET))

if [ "$QUICK" = 1 ]; then
    REPS=1 SECS=3 WARMUP=1 IDLE=1000 DRAIN_USERS=200 DRAIN_MSGS=50
else
    REPS=2 SECS=10 WARMUP=2 IDLE=10000 DRAIN_USERS=1000 DRAIN_MSGS=100
fi
PAIRS=100 WINDOW=4 LAT_PAIRS=10 LAT_WINDOW=8 TEXT=64
ROWS=" ${BENCH_ROWS:-1 2 3 4 5 6 7 8} "
want() { [[ $ROWS == *" $1 "* ]]; }

for tool in vartalapctl vartalapd vartalap-loadgen vartalap-mqtt-bench; do
    [ -x "$BIN/$tool" ] || { echo "run.sh: $BIN/$tool is missing (make bench builds it)" >&2; exit 1; }
done
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "run.sh: mosquitto is not installed" >&2; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
PERF_NOTE="perf stat"
if ! perf stat -e raw_syscalls:sys_enter,context-switches -x, -- true >/dev/null 2>&1; then
    PERF_NOTE="/proc (perf unusable: context switches only, no system call count)"
fi

TMP=$(mktemp -d /tmp/vartalap-bench.XXXXXX)
rm -rf "$LOGS" && mkdir -p "$LOGS"
SERVER=""   # the pid of the server process we started, if one runs
cleanup() {
    if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
# The 1-minute load average: other work on the machine skews every figure.
loadavg() { cut -d' ' -f1 /proc/loadavg; }
# awk arithmetic: calc '2 * x' x=3
calc() { local expr=$1; shift; awk -v "${@:-_=0}" "BEGIN { printf \"%.6g\", $expr }"; }

# ---------------------------------------------------------------------------------------
# Servers.

# Waits (polling, at most $2 s) until the command "$3..." succeeds.
wait_for() {
    local what=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { say "run.sh: timed out waiting for $what"; return 1; }
        [ -z "$SERVER" ] || kill -0 "$SERVER" 2>/dev/null || { say "run.sh: the server exited while waiting for $what"; return 1; }
        sleep 0.05 # polling interval of a condition with a deadline
    done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free() { ! port_open "$1"; }

# The shipped topology $1 rewritten into $2 for a run in directory $3: every 127.0.0.1 port
# plus OFFSET, ipc:// paths under $3/ipc, data_dir $3/data, log_level warn, every session
# and persistence instance with `durability = "$4"`, and the gateways' per-user send limit
# off (`send_rate_per_minute = 0`): a bench user sends thousands of messages a second, the
# limit's default (50 a second, docs/SECURITY.md) is for people.
make_topology() {
    awk -v off="$OFFSET" -v dir="$3" -v dur="$4" '
        function options() {
            if (kind == "session" || kind == "persistence") print "durability = \"" dur "\""
            if (kind == "ws-gateway" || kind == "rest-gateway") print "send_rate_per_minute = 0"
        }
        function flush() { if ((kind == "session" || kind == "persistence" || kind == "ws-gateway" || kind == "rest-gateway") && !done) { print "[daemon.options]"; options() } }
        /^\[\[daemon\]\]/ { flush(); kind = ""; done = 0; print; next }
        /^[ \t]*kind[ \t]*=/ { kind = $0; sub(/^[^"]*"/, "", kind); sub(/".*/, "", kind) }
        /^[ \t]*durability[ \t]*=/ { next }
        /^[ \t]*send_rate_per_minute[ \t]*=/ { next }
        /^[ \t]*data_dir[ \t]*=/ { print "data_dir = \"" dir "/data\""; next }
        /^[ \t]*log_level[ \t]*=/ { print "log_level = \"warn\""; next }
        /^\[daemon\.options\]/ { print; options(); done = 1; next }
        {
            line = $0; out = ""
            while (match(line, /127\.0\.0\.1:[0-9]+/)) {
                out = out substr(line, 1, RSTART - 1) "127.0.0.1:" (substr(line, RSTART + 10, RLENGTH - 10) + off)
                line = substr(line, RSTART + RLENGTH)
            }
            line = out line
            gsub(/ipc:\/\/\/tmp\//, "ipc://" dir "/ipc/", line)
            print line
        }
        END { flush() }' "$ROOT/$1" >"$2"
}

RUN=0
# start_ours TOPOLOGY DURABILITY PIN(0|1) SPAWN(0|1): sets SERVER (vartalapctl's pid),
# SERVER_PIDS (the processes whose CPU and memory count: vartalapctl in one process, every
# vartalapd under --spawn), WS_PORTS and HTTP_PORT.
start_ours() {
    local source=$1 durability=$2 pin=$3 spawn=$4
    RUN=$((RUN + 1))
    local dir=$TMP/run-$RUN
    mkdir -p "$dir"
    make_topology "$source" "$dir/topology.toml" "$dir" "$durability"
    WS_PORTS=$(awk '/kind = "ws-gateway"/ { ws = 1 } /^listen/ && ws { sub(/.*:/, ""); sub(/".*/, ""); printf "%s%s", sep, $0; sep = ","; ws = 0 }' "$dir/topology.toml")
    HTTP_PORT=$(awk '/kind = "rest-gateway"/ { r = 1 } /^listen/ && r { sub(/.*:/, ""); sub(/".*/, ""); print; exit }' "$dir/topology.toml")
    local port
    for port in ${WS_PORTS//,/ } $HTTP_PORT; do
        port_free "$port" || { say "run.sh: port $port is in use (set BENCH_PORT_OFFSET)"; return 1; }
    done
    local cmd=("$BIN/vartalapctl" up "$dir/topology.toml" --log-level warn)
    if [ "$spawn" = 1 ]; then cmd+=(--spawn --vartalapd "$BIN/vartalapd"); fi
    if [ "$pin" = 1 ]; then cmd=(taskset -c 0 "${cmd[@]}"); fi
    (cd "$dir" && exec "${cmd[@]}" >"$dir/out.log" 2>"$dir/err.log") &
    SERVER=$!
    wait_for "the server's ready line" 60 grep -qx ready "$dir/out.log" || { cat "$dir/err.log" >&2; return 1; }
    wait_for "vartalapctl status" 30 "$BIN/vartalapctl" status "$dir/topology.toml" --timeout-ms 1000
    SERVER_PIDS=$SERVER
    if [ "$spawn" = 1 ]; then
        # A process listed by the glob may be gone before awk reads it (|| true: with pipefail
        # one such race would end the whole script silently).
        SERVER_PIDS=$(for stat in /proc/[0-9]*/stat; do awk -v p="$SERVER" '$4 == p { print $1 }' "$stat" 2>/dev/null || true; done | paste -sd,)
    fi
}

# start_mosquitto PIN(0|1): mosquitto 2 with persistence in a fresh directory.
start_mosquitto() {
    local pin=$1
    RUN=$((RUN + 1))
    local dir=$TMP/run-$RUN
    mkdir -p "$dir"
    port_free "$MQTT_PORT" || { say "run.sh: port $MQTT_PORT is in use (set BENCH_PORT_OFFSET)"; return 1; }
    cat >"$dir/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
set_tcp_nodelay true
max_queued_messages 1000
log_dest file $dir/mosquitto.log
log_type error
log_type warning
EOF
    # As root, mosquitto drops to its own user, which must own the persistence directory.
    if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$dir"; fi
    local cmd=("$MOSQUITTO" -c "$dir/mosquitto.conf")
    if [ "$pin" = 1 ]; then cmd=(taskset -c 0 "${cmd[@]}"); fi
    "${cmd[@]}" >"$dir/out.log" 2>&1 &
    SERVER=$!
    SERVER_PIDS=$SERVER
    wait_for "mosquitto on port $MQTT_PORT" 30 port_open "$MQTT_PORT"
}

stop_server() {
    [ -n "$SERVER" ] || return 0
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

# ---------------------------------------------------------------------------------------
# Clients. Each run's RESULT fields are kept as R[<name>.<field>].

declare -A R
# client NAME PIN(0|1) COMMAND...: runs the client (on core 1 when pinned), keeps its output
# in logs/NAME.log and its RESULT fields in R.
client() {
    local name=$1 pin=$2; shift 2
    local cmd=("$@")
    if [ "$pin" = 1 ]; then cmd=(taskset -c 1 "${cmd[@]}"); fi
    R[$name.load]=$(loadavg)
    if ! "${cmd[@]}" >"$LOGS/$name.log" 2>&1; then
        say "run.sh: $name failed:"; tail -5 "$LOGS/$name.log" >&2
    fi
    local field
    for field in $(grep '^RESULT ' "$LOGS/$name.log" | tail -1 | cut -d' ' -f2-); do
        R[$name.${field%%=*}]=${field#*=}
    done
    R[$name.ran]=1
}
ours_pairs() { # NAME PIN EXTRA...
    local name=$1 pin=$2; shift 2
    client "$name" "$pin" "$BIN/vartalap-loadgen" --ws-port "$WS_PORTS" --http-port "$HTTP_PORT" \
        --server-pid "$SERVER_PIDS" --receipts --text-bytes "$TEXT" --seconds "$SECS" --warmup "$WARMUP" "$@"
}
mqtt_pairs() { # NAME PIN EXTRA...
    local name=$1 pin=$2; shift 2
    client "$name" "$pin" "$BIN/vartalap-mqtt-bench" --port "$MQTT_PORT" --server-pid "$SERVER_PIDS" --receipts \
        --payload-bytes "$TEXT" --seconds "$SECS" --warmup "$WARMUP" "$@"
}

# mean FIELD NAME...: the mean of R[NAME.FIELD] over the runs that have it ("" if none).
mean() {
    local field=$1; shift
    local values=() name
    for name in "$@"; do [ -n "${R[$name.$field]:-}" ] && values+=("${R[$name.$field]}"); done
    [ ${#values[@]} -gt 0 ] || { echo ""; return; }
    printf '%s\n' "${values[@]}" | awk '{ s += $1 } END { printf "%.6g", s / NR }'
}
names() { local prefix=$1 r; for r in $(seq 1 "$REPS"); do printf '%s ' "$prefix.$r"; done; }

# ---------------------------------------------------------------------------------------
# The runs.

START=$SECONDS
LOAD_START=$(loadavg)
say "vartalap bench$([ "$QUICK" = 1 ] && echo " (QUICK)"): $PAIRS pairs x window $WINDOW, ${TEXT}-byte text, receipts; $REPS run(s) per server per row, ${SECS} s measured after ${WARMUP} s warm-up"

# ours_run NAME ROW DURABILITY PIN TOPOLOGY SPAWN EXTRA...: one run of ours.
ours_run() {
    local name=$1 row=$2 durability=$3 pin=$4 topology=$5 spawn=$6; shift 6
    say "row $row, run ${name##*.}: ours ($topology, $durability$([ "$pin" = 1 ] && echo ", pinned"))"
    start_ours "$topology" "$durability" "$pin" "$spawn"
    ours_pairs "$name" "$pin" --pairs "$PAIRS" --window "$WINDOW" "$@"
    stop_server
}
# pair_row ROW DURABILITY PIN TOPOLOGY SPAWN EXTRA...: ours and mosquitto alternately, REPS times.
pair_row() {
    local row=$1 durability=$2 pin=$3 topology=$4 spawn=$5; shift 5
    local r
    for r in $(seq 1 "$REPS"); do
        ours_run "ours$row.$r" "$row" "$durability" "$pin" "$topology" "$spawn" "$@"
        say "row $row, run $r: mosquitto$([ "$pin" = 1 ] && echo " (pinned)")"
        start_mosquitto "$pin"
        mqtt_pairs "mosq$row.$r" "$pin" --pairs "$PAIRS" --window "$WINDOW" "$@"
        stop_server
    done
}
# ours_row ROW DURABILITY PIN TOPOLOGY SPAWN EXTRA...: ours alone, REPS times (a variant of a
# row whose mosquitto runs are the same).
ours_row() {
    local row=$1 durability=$2 pin=$3 topology=$4 spawn=$5; shift 5
    local r
    for r in $(seq 1 "$REPS"); do ours_run "ours$row.$r" "$row" "$durability" "$pin" "$topology" "$spawn" "$@"; done
}
if want 1; then pair_row 1 process 0 topology/local.toml 0; fi
if want 2; then pair_row 2 fsync 0 topology/local.toml 0; fi
if want 3; then pair_row 3 fsync 1 topology/local.toml 0; ours_row 3p process 1 topology/local.toml 0; fi
if want 4; then pair_row 4 fsync 0 topology/local-multiprocess.toml 1; ours_row 4p process 0 topology/local-multiprocess.toml 1; fi
if want 5; then pair_row 5 process 0 topology/local.toml 0 --perf-stat; fi

# Row 6: open loop at half of each server's own closed-loop peak (row 2's mean for ours;
# rows 1 and 2 for mosquitto, whose runs there are the same scenario). Row 6p: ours again in
# `process` durability at half of row 1's peak, the mode comparable with mosquitto's
# `persistence true` (which writes its database periodically, never per message).
OURS_PEAK=$(mean msgs_per_s $(names ours2))
OURS_PEAK_P=$(mean msgs_per_s $(names ours1))
OURS_RATE_P=
MOSQ_PEAK=$(mean msgs_per_s $(names mosq1) $(names mosq2))
OURS_RATE="" MOSQ_RATE=""
if want 6 && { [ -z "$OURS_PEAK" ] || [ -z "$MOSQ_PEAK" ]; }; then say "row 6 skipped: it needs the peaks of rows 1 and 2"; fi
if want 6 && [ -n "$OURS_PEAK" ] && [ -n "$MOSQ_PEAK" ]; then
OURS_RATE=$(calc 'p / 2' p="$OURS_PEAK")
MOSQ_RATE=$(calc 'p / 2' p="$MOSQ_PEAK")
for r in $(seq 1 "$REPS"); do
    say "row 6, run $r: ours at $OURS_RATE msg/s"
    start_ours topology/local.toml fsync 0 0
    ours_pairs "ours6.$r" 0 --pairs "$LAT_PAIRS" --window "$LAT_WINDOW" --rate "$OURS_RATE"
    stop_server
    if [ -n "$OURS_PEAK_P" ]; then
        OURS_RATE_P=$(calc 'p / 2' p="$OURS_PEAK_P")
        say "row 6p, run $r: ours (process) at $OURS_RATE_P msg/s"
        start_ours topology/local.toml process 0 0
        ours_pairs "ours6p.$r" 0 --pairs "$LAT_PAIRS" --window "$LAT_WINDOW" --rate "$OURS_RATE_P"
        stop_server
    fi
    say "row 6, run $r: mosquitto at $MOSQ_RATE msg/s"
    start_mosquitto 0
    mqtt_pairs "mosq6.$r" 0 --pairs "$LAT_PAIRS" --window "$LAT_WINDOW" --rate "$MOSQ_RATE"
    stop_server
done
fi

# Row 7: RSS per idle authenticated connection.
if want 7; then
say "row 7: ours, $IDLE idle WebSockets"
start_ours topology/local.toml fsync 0 0
client ours7 0 "$BIN/vartalap-loadgen" --ws-port "$WS_PORTS" --http-port "$HTTP_PORT" --server-pid "$SERVER_PIDS" --idle "$IDLE"
stop_server
say "row 7: mosquitto, $IDLE idle MQTT connections"
start_mosquitto 0
client mosq7 0 "$BIN/vartalap-mqtt-bench" --port "$MQTT_PORT" --server-pid "$SERVER_PIDS" --idle "$IDLE"
stop_server
fi

# Row 8: offline drain.
if want 8; then
say "row 8: ours, $DRAIN_USERS offline users x $DRAIN_MSGS messages"
start_ours topology/local.toml fsync 0 0
client ours8 0 "$BIN/vartalap-loadgen" --ws-port "$WS_PORTS" --http-port "$HTTP_PORT" --server-pid "$SERVER_PIDS" \
    --drain-users "$DRAIN_USERS" --drain-messages "$DRAIN_MSGS" --window 64
stop_server
say "row 8: mosquitto, $DRAIN_USERS persistent sessions x $DRAIN_MSGS queued messages"
start_mosquitto 0
client mosq8 0 "$BIN/vartalap-mqtt-bench" --port "$MQTT_PORT" --server-pid "$SERVER_PIDS" \
    --drain-users "$DRAIN_USERS" --drain-messages "$DRAIN_MSGS" --window 64
stop_server
fi
WALL=$((SECONDS - START))
LOAD_END=$(loadavg)

# ---------------------------------------------------------------------------------------
# The table.
source "$ROOT/tools/bench/report.sh"
mkdir -p "$OUT"
report >"$OUT/results.md"
cat "$OUT/results.md"
say "written to ${OUT#"$ROOT"/}/results.md (client logs in ${LOGS#"$ROOT"/}/); ${WALL} s of runs"
