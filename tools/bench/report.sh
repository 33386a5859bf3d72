# The results table of `make bench` (sourced by tools/bench/run.sh, which fills R, REPS,
# QUICK, the row parameters and WALL): `report` prints markdown, the issue-10 table first
# (row, mosquitto, ours, ratio, target, met?), then every run's figures. Bash only.

# fmt VALUE DECIMALS: a number rounded ("-" when empty).
fmt() { [ -n "$1" ] && awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }' || echo "-"; }
# scaled VALUE DIVISOR DECIMALS: VALUE / DIVISOR rounded ("-" when empty).
scaled() { [ -n "$1" ] && awk -v v="$1" -v q="$2" -v d="$3" 'BEGIN { printf "%.*f", d, v / q }' || echo "-"; }
# ratio A B: A / B with two decimals and "×" ("-" when either is missing or B is 0).
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f×", a / b }' || echo "-"; }
# met VALUE OP LIMIT: "yes" / "**no**" ("-" when VALUE is empty); OP is le or ge.
met() {
    [ -n "$1" ] || { echo "-"; return; }
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "le") ? (v <= l) : (v >= l); print ok ? "yes" : "**no**" }'
}
# ratio_value A B: A / B as a plain number ("" when missing).
ratio_value() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) printf "%.6g", a / b }' || true; }

report() {
    local commit machine
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
    machine="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs (nproc), kernel $(uname -r)"
    echo "# make bench$([ "$QUICK" = 1 ] && echo " QUICK=1")"
    echo
    if [ "$QUICK" = 1 ]; then
        echo "**QUICK run**: $REPS run per server per row, ${SECS} s measured after ${WARMUP} s warm-up,"
        echo "$IDLE idle connections (not 10,000), drain $DRAIN_USERS users × $DRAIN_MSGS messages (not 1,000 × 100)."
        echo "Indicative only; the full run is \`make bench\`."
    else
        echo "Full run: $REPS runs per server per row (alternating ours, mosquitto), ${SECS} s measured after ${WARMUP} s warm-up."
    fi
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit; build $BUILD_DIR"
    echo "- machine: $machine; 1-minute load average $LOAD_START at the start, $LOAD_END at the end (per run below:"
    echo "  a load above about 1 means other work shared the cores and the figures are low)"
    echo "- mosquitto: $("$MOSQUITTO" -h 2>&1 | sed -n 's/^mosquitto version //p' | head -1) (persistence true, QoS 1); system calls: $PERF_NOTE"
    echo "- workload: $PAIRS pairs × window $WINDOW, ${TEXT}-byte text, a \`delivered\` receipt per message (MQTT: a QoS 1 publish back);"
    echo "  rows 1, 2, 4, 5, 6 unpinned; row 3 server on core 0 (\`taskset -c 0\`), client on core 1; ${WALL} s of runs"
    echo

    local m o
    echo "| # | what | mosquitto | ours | ratio | target | met? |"
    echo "|---|---|---|---|---|---|---|"
    m=$(mean server_us_per_msg $(names mosq1)) o=$(mean server_us_per_msg $(names ours1))
    echo "| 1 | CPU per delivered+acked message, \`process\` durability (µs) | $(fmt "$m" 1) | $(fmt "$o" 1) | $(ratio "$o" "$m") | ≤ 1.2× | $(met "$(ratio_value "$o" "$m")" le 1.2) |"
    m=$(mean server_us_per_msg $(names mosq2)) o=$(mean server_us_per_msg $(names ours2))
    echo "| 2 | the same, \`fsync\` durability (µs) | $(fmt "$m" 1) | $(fmt "$o" 1) | $(ratio "$o" "$m") | ≤ 1.5× | $(met "$(ratio_value "$o" "$m")" le 1.5) |"
    m=$(mean msgs_per_s $(names mosq3)) o=$(mean msgs_per_s $(names ours3))
    echo "| 3 | msg/s, one-process topology, server pinned to core 0, client core 1 | $(fmt "$m" 0) | $(fmt "$o" 0) | $(ratio "$o" "$m") | ≥ 1.0× | $(met "$(ratio_value "$o" "$m")" ge 1.0) |"
    o=$(mean msgs_per_s $(names ours3p))
    echo "| 3p | the same, ours in \`process\` durability | as row 3 | $(fmt "$o" 0) | $(ratio "$o" "$m") | ≥ 1.0× | $(met "$(ratio_value "$o" "$m")" ge 1.0) |"
    m=$(mean msgs_per_s $(names mosq4)) o=$(mean msgs_per_s $(names ours4))
    echo "| 4 | msg/s, multi-process topology (\`--spawn\`), unpinned | $(fmt "$m" 0) | $(fmt "$o" 0) | $(ratio "$o" "$m") | ≥ 0.7× | $(met "$(ratio_value "$o" "$m")" ge 0.7) |"
    o=$(mean msgs_per_s $(names ours4p))
    echo "| 4p | the same, ours in \`process\` durability | as row 4 | $(fmt "$o" 0) | $(ratio "$o" "$m") | ≥ 0.7× | $(met "$(ratio_value "$o" "$m")" ge 0.7) |"
    local ms mc os oc
    ms=$(mean syscalls_per_msg $(names mosq5)) mc=$(mean cs_per_msg $(names mosq5))
    os=$(mean syscalls_per_msg $(names ours5)) oc=$(mean cs_per_msg $(names ours5))
    local both=yes
    [ "$(met "$os" le 16)" = yes ] && [ "$(met "$oc" le 1)" = yes ] || both="**no**"
    [ -n "$os" ] || both="-"
    echo "| 5 | system calls / context switches per message at saturation (\`process\`) | $(fmt "$ms" 1) / $(fmt "$mc" 2) | $(fmt "$os" 1) / $(fmt "$oc" 2) | $(ratio "$os" "$ms") / $(ratio "$oc" "$mc") | ≤ 16 / ≤ 1 | $both |"
    local m50 m99 o50 o99
    m50=$(mean p50_us $(names mosq6)) m99=$(mean p99_us $(names mosq6))
    o50=$(mean p50_us $(names ours6)) o99=$(mean p99_us $(names ours6))
    both=yes
    [ "$(met "$o50" le 500)" = yes ] && [ "$(met "$o99" le 2000)" = yes ] || both="**no**"
    [ -n "$o50" ] || both="-"
    echo "| 6 | send→deliver p50 / p99 at half of own peak, open loop, $LAT_PAIRS pairs (ms) | $(scaled "$m50" 1000 2) / $(scaled "$m99" 1000 2) at $(fmt "$MOSQ_RATE" 0)/s | $(scaled "$o50" 1000 2) / $(scaled "$o99" 1000 2) at $(fmt "$OURS_RATE" 0)/s | $(ratio "$o50" "$m50") / $(ratio "$o99" "$m99") | ≤ 0.5 / ≤ 2 ms | $both |"
    o50=$(mean p50_us $(names ours6p)) o99=$(mean p99_us $(names ours6p))
    both=yes
    [ "$(met "$o50" le 500)" = yes ] && [ "$(met "$o99" le 2000)" = yes ] || both="**no**"
    [ -n "$o50" ] || both="-"
    echo "| 6p | the same, ours in \`process\` durability at half of row 1's peak (ms) | as row 6 | $(scaled "$o50" 1000 2) / $(scaled "$o99" 1000 2) at $(fmt "$OURS_RATE_P" 0)/s | $(ratio "$o50" "$m50") / $(ratio "$o99" "$m99") | ≤ 0.5 / ≤ 2 ms | $both |"
    m=${R[mosq7.rss_per_conn_bytes]:-} o=${R[ours7.rss_per_conn_bytes]:-}
    echo "| 7 | server RSS per idle authenticated connection, $IDLE connections (KiB) | $(scaled "$m" 1024 2) | $(scaled "$o" 1024 2) | $(ratio "$o" "$m") | ≤ 2 KiB | $(met "$o" le 2048) |"
    m=${R[mosq8.drain_msgs_per_s]:-} o=${R[ours8.drain_msgs_per_s]:-}
    echo "| 8 | offline drain, $DRAIN_USERS users × $DRAIN_MSGS messages, all reconnect at once (msg/s) | $(fmt "$m" 0) | $(fmt "$o" 0) | $(ratio "$o" "$m") | ≥ 100k | $(met "$o" ge 100000) |"
    echo
    echo "Ratios are ours / mosquitto. Row 5's and 6's targets are absolute (ours); row 7's and 8's too."
    echo "Row 6 offers half of each server's mean closed-loop rate of row 2 (mosquitto: rows 1 and 2), ours in \`fsync\` durability;"
    echo "row 6p ours in \`process\` durability at half of row 1's rate (mosquitto's \`persistence true\` never syncs per message)."
    echo "Row 7: logins over REST took $(fmt "${R[ours7.login_s]:-}" 1) s for $IDLE users; the WebSockets opened in $(fmt "${R[ours7.connect_s]:-}" 1) s."
    echo
    echo "Every run (client logs in build/bench/logs/):"
    echo
    echo "| run | load | msg/s | p50 / p99 µs | receipt p50 / p99 µs | server µs/msg | server cores | client cores | syscalls/msg | ctx sw/msg |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    local name row r
    for row in 1 2 3 3p 4 4p 5 6 6p; do
        for r in $(seq 1 "$REPS"); do
            for name in ours$row.$r mosq$row.$r; do
                [ -n "${R[$name.ran]:-}" ] || continue
                echo "| $name | ${R[$name.load]:--} | $(fmt "${R[$name.msgs_per_s]:-}" 0) | ${R[$name.p50_us]:--} / ${R[$name.p99_us]:--} | ${R[$name.rtt_p50_us]:--} / ${R[$name.rtt_p99_us]:--} | $(fmt "${R[$name.server_us_per_msg]:-}" 1) | $(fmt "${R[$name.server_cores]:-}" 2) | $(fmt "${R[$name.client_cores]:-}" 2) | $(fmt "${R[$name.syscalls_per_msg]:-}" 1) | $(fmt "${R[$name.cs_per_msg]:-}" 2) |"
            done
        done
    done
    for name in ours7 mosq7; do
        [ -n "${R[$name.ran]:-}" ] || continue
        echo "| $name (idle: $(scaled "${R[$name.rss_per_conn_bytes]:-}" 1 0) bytes per connection) | ${R[$name.load]:--} | - | - | - | - | - | - | - | - |"
    done
    for name in ours8 mosq8; do
        [ -n "${R[$name.ran]:-}" ] || continue
        echo "| $name (drain) | ${R[$name.load]:--} | $(fmt "${R[$name.drain_msgs_per_s]:-}" 0) | - | - | $(fmt "${R[$name.server_us_per_msg]:-}" 1) | $(fmt "${R[$name.server_cores]:-}" 2) | $(fmt "${R[$name.client_cores]:-}" 2) | - | - |"
    done
}
