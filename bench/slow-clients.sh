#!/usr/bin/env bash
# Issue 9's slow and hostile clients: slowhttptest (Debian) holds thousands of
# slow connections against seckill while a healthy open-loop client
# (seckill-bench --rate) keeps measuring p99 on GET /healthz. Loopback only.
#
#   bench/slow-clients.sh              # 5,000 connections per mode (~2.5 min)
#   QUICK=1 bench/slow-clients.sh      # 500 connections, short runs (~1 min)
#
# Environment:
#   CONNECTIONS=5000   slow connections slowhttptest aims for (-c)
#   RATE=1000          slow connections opened per second (-r)
#   DURATION=20        seconds each attack lasts (-l); the healthy client runs
#                      inside it, after the ramp-up (CONNECTIONS/RATE + 1 s)
#   BENCH_RATE=2000    healthy client's fixed rate, requests/s
#   BENCH_CONNS=16     healthy client's keep-alive connections
#   BENCH_DURATION=10  healthy client's measured seconds (baseline and attacks)
#   MODES="H B X"      slowhttptest modes: H slow headers (slowloris),
#                      B slow body (R-U-Dead-Yet), X slow read
#   INTERVAL=5         seconds between slowhttptest's follow-up bytes (-i)
#   BODY_PATH=/healthz path for the slow-body POSTs
#   READ_PATH=/healthz path for the slow reads
#   SECKILL_SET="..."  extra `--set K=V` for the server, space separated
#                      (e.g. "http.head_timeout_ms=5000")
#   SECKILL=path       the server binary [target/release/seckill]
#   KEEP=1             keep the temporary directory (logs, JSON, RSS samples)
#   BENCH=path         the load generator [target/release/seckill-bench]
#   CHECK=1            CI mode: fail unless the healthy client saw no error in
#                      every mode and the server's RSS peak stayed under
#                      RSS_MAX_MIB (default 512); latencies are still only printed
#
# Figures are printed, not asserted: without CHECK=1 the exit status is 0
# unless a tool fails.
# The target column is issue 9's bar: healthy p99 <= max(2 x baseline p99, 50 ms)
# with no errors; RSS is sampled (VmRSS) every 0.2 s during each attack, and
# "fds" is the server's peak open file descriptors (≈ connections held).
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    CONNECTIONS=${CONNECTIONS:-500}
    DURATION=${DURATION:-10}
    BENCH_DURATION=${BENCH_DURATION:-4}
fi
CONNECTIONS=${CONNECTIONS:-5000}
RATE=${RATE:-1000}
DURATION=${DURATION:-20}
BENCH_RATE=${BENCH_RATE:-2000}
BENCH_CONNS=${BENCH_CONNS:-16}
BENCH_DURATION=${BENCH_DURATION:-10}
MODES=${MODES:-"H B X"}
INTERVAL=${INTERVAL:-5}
BODY_PATH=${BODY_PATH:-/healthz}
READ_PATH=${READ_PATH:-/healthz}
SECKILL_SET=${SECKILL_SET:-}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$(realpath "${BENCH:-"$ROOT/target/release/seckill-bench"}")
CHECK=${CHECK:-0}
RSS_MAX_MIB=${RSS_MAX_MIB:-512}
FAILED=()
SECKILL=$(realpath "${SECKILL:-"$ROOT/target/release/seckill"}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-slow.XXXXXX")
PIDS=()

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'slow-clients: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------

if ! command -v slowhttptest >/dev/null; then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    log "installing slowhttptest"
    $sudo apt-get install -y slowhttptest >&2 ||
        { $sudo apt-get update >&2 && $sudo apt-get install -y slowhttptest >&2; } ||
        die "could not install slowhttptest"
fi
command -v python3 >/dev/null || die "python3 is needed to read seckill-bench's JSON"
if [[ ! -x $SECKILL || ! -x $BENCH ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p seckill -p seckill-bench >&2) || die "cargo build failed"
fi

# 5,000 slow sockets on each side of loopback, plus the healthy client's.
want=$((CONNECTIONS * 2 + 1024))
[[ $want -lt 65536 ]] && want=65536
ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
[[ $(ulimit -n) -ge $((CONNECTIONS + 256)) ]] ||
    die "ulimit -n is $(ulimit -n), too low for $CONNECTIONS connections"

# --- server ------------------------------------------------------------------

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

start_seckill() { # sets SECKILL_PID, ADDR
    local out="$WORK/seckill.out" args=() kv i
    for kv in $SECKILL_SET; do args+=(--set "$kv"); done
    mkdir -p "$WORK/data"
    (cd "$WORK" && exec "$SECKILL" --listen 127.0.0.1:0 \
        --set server.data_dir="$WORK/data" \
        --set limits.per_ip_rps=0 \
        --set "http.connections_max=$((CONNECTIONS * 2 + 1024))" \
        "${args[@]}" >"$out" 2>"$WORK/seckill.err") &
    SECKILL_PID=$!
    PIDS+=("$SECKILL_PID")
    ADDR=""
    for i in $(seq 200); do
        ADDR=$(sed -n 's|^listening on http://\([^/ ]*\).*|\1|p' "$out" | head -n1)
        [[ -n $ADDR ]] && break
        kill -0 "$SECKILL_PID" 2>/dev/null || { cat "$WORK/seckill.err" >&2; die "seckill exited"; }
        sleep 0.1
    done
    [[ -n $ADDR ]] || die "seckill printed no 'listening on' line in 20 s"
}

# --- measurements ------------------------------------------------------------

healthy() { # JSON: open-loop GET /healthz
    "$BENCH" run --rate "$BENCH_RATE" -c "$BENCH_CONNS" -d "${BENCH_DURATION}s" \
        --json "$1" "http://$ADDR/healthz" >"$1.log" 2>&1 || true
    [[ -s $1 ]] || { cat "$1.log" >&2; die "seckill-bench wrote no JSON ($1)"; }
}

# p99_ms errors(total) detail: from seckill-bench's JSON
bench_figures() {
    python3 - "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
e = j["errors"]
errs = sum(e.values()) + j.get("non_2xx", 0)
detail = ",".join(f"{k}={v}" for k, v in e.items() if v)
if j.get("non_2xx"): detail += (",", "")[not detail] + f"non2xx={j['non_2xx']}"
if j.get("unsent"): detail += (",", "")[not detail] + f"unsent={j['unsent']}"
if j.get("reconnects"): detail += (",", "")[not detail] + f"reconnects={j['reconnects']}"
print(f"{j['latency_us']['p99'] / 1000:.3f} {errs} {detail or '-'} {j['requests']}")
EOF
}

sampler() { # PID FILE: "rss_kb fds" every 0.2 s until killed
    while kill -0 "$1" 2>/dev/null; do
        echo "$(rss_kb "$1") $(fd_count "$1")" >>"$2"
        sleep 0.2
    done
}

# Last slowhttptest status: "connected closed pending error available"
slow_summary() {
    tr '\r' '\n' <"$1" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | awk '
        /pending:/               {p=$NF}
        /connected:/             {c=$NF}
        /error:/                 {e=$NF}
        /closed:/                {cl=$NF}
        /service available:/     {a=$NF}
        /connected:/ && c+0 > maxc {maxc=c+0}
        END {printf "%s %s %s %s %s\n", maxc+0, cl+0, p+0, e+0, (a==""?"?":a)}'
}

mode_name() {
    case $1 in
        H) echo "slow headers" ;;
        B) echo "slow body" ;;
        X) echo "slow read" ;;
        *) echo "$1" ;;
    esac
}

start_seckill
log "seckill $SECKILL_PID on $ADDR; ulimit -n $(ulimit -n); $CONNECTIONS slow connections at $RATE/s, ${DURATION}s per mode"

log "baseline: ${BENCH_RATE} req/s, $BENCH_CONNS connections, ${BENCH_DURATION}s"
healthy "$WORK/baseline.json"
read -r BASE_P99 BASE_ERRS BASE_DETAIL BASE_REQS <<<"$(bench_figures "$WORK/baseline.json")"
TARGET=$(python3 -c "print(f'{max(2 * $BASE_P99, 50.0):.3f}')")
RAMP=$(( (CONNECTIONS + RATE - 1) / RATE + 1 ))
[[ $((RAMP + BENCH_DURATION + 1)) -le $DURATION ]] ||
    log "note: ramp ${RAMP}s + bench ${BENCH_DURATION}s exceeds DURATION=${DURATION}s; the healthy run outlasts the attack"

ROWS=()
for mode in $MODES; do
    name=$(mode_name "$mode")
    sleep 1
    rss0=$(rss_kb "$SECKILL_PID")
    fd0=$(fd_count "$SECKILL_PID")
    case $mode in
        H) extra=(-H -u "http://$ADDR/healthz") ;;
        B) extra=(-B -u "http://$ADDR$BODY_PATH" -s 8192) ;;
        X) extra=(-X -u "http://$ADDR$READ_PATH" -k 10 -n 1 -w 1 -y 512 -z 32) ;;
        *) die "unknown mode $mode" ;;
    esac
    log "$name: slowhttptest -c $CONNECTIONS -r $RATE -l $DURATION; healthy client after ${RAMP}s"
    samples="$WORK/rss-$mode.txt"
    : >"$samples"
    sampler "$SECKILL_PID" "$samples" &
    spid=$!
    PIDS+=("$spid")
    slowhttptest "${extra[@]}" -c "$CONNECTIONS" -r "$RATE" -l "$DURATION" \
        -i "$INTERVAL" -p 3 >"$WORK/slow-$mode.log" 2>&1 &
    apid=$!
    PIDS+=("$apid")
    sleep "$RAMP"
    kill -0 "$apid" 2>/dev/null || { tail -n 20 "$WORK/slow-$mode.log" >&2; die "slowhttptest ($mode) exited early"; }
    healthy "$WORK/attack-$mode.json"
    rc=0
    wait "$apid" || rc=$?
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    [[ $rc == 0 ]] || { tail -n 20 "$WORK/slow-$mode.log" >&2; die "slowhttptest ($mode) failed with status $rc"; }
    read -r p99 errs detail reqs <<<"$(bench_figures "$WORK/attack-$mode.json")"
    read -r s_conn s_closed s_pend s_err s_avail <<<"$(slow_summary "$WORK/slow-$mode.log")"
    read -r rss_peak fd_peak <<<"$(awk 'BEGIN{r=0;f=0} {if ($1>r) r=$1; if ($2>f) f=$2} END{print r, f}' "$samples")"
    rss1=$(rss_kb "$SECKILL_PID")
    ok=$(python3 -c "print('yes' if $p99 <= $TARGET and $errs == 0 else 'NO')")
    [[ $errs == 0 ]] || FAILED+=("$name: the healthy client saw $errs errors ($detail)")
    [[ $((rss_peak / 1024)) -le $RSS_MAX_MIB ]] || FAILED+=("$name: RSS peak $((rss_peak / 1024)) MiB > $RSS_MAX_MIB MiB")
    ROWS+=("$(printf '%-13s %9.3f %9.3f %9.3f %5s %6s %-22s %8.1f %8.1f %8.1f %6s %6s %7s %7s %6s' \
        "$name" "$p99" "$BASE_P99" "$TARGET" "$ok" "$errs" "$detail" \
        "$(mib "$rss0")" "$(mib "$rss_peak")" "$(mib "$rss1")" \
        "$fd0" "$fd_peak" "$s_conn" "$s_closed" "$s_avail")")
    log "$name: p99 ${p99} ms, errors $errs, RSS peak $((rss_peak / 1024)) MiB, fds peak $fd_peak, slowhttptest connected max $s_conn closed $s_closed service-available $s_avail"
done

echo
echo "seckill slow clients: $CONNECTIONS slow connections per mode at $RATE/s for ${DURATION}s;"
echo "healthy client GET /healthz open loop ${BENCH_RATE} req/s, $BENCH_CONNS conns, ${BENCH_DURATION}s (baseline: $BASE_REQS requests, errors $BASE_ERRS)"
echo "server: http.head_timeout_ms etc. at defaults${SECKILL_SET:+ except: $SECKILL_SET}; p99 in ms, RSS in MiB"
echo
printf '%-13s %9s %9s %9s %5s %6s %-22s %8s %8s %8s %6s %6s %7s %7s %6s\n' \
    mode p99 base_p99 target ok errors error_detail rss_pre rss_peak rss_post fds0 fdsmax s_conn s_closed s_avail
printf '%-13s %9.3f %9.3f %9.3f %5s %6s %-22s %8s %8s %8s %6s %6s %7s %7s %6s\n' \
    baseline "$BASE_P99" "$BASE_P99" "$TARGET" - "$BASE_ERRS" "$BASE_DETAIL" - - - - - - - -
for row in "${ROWS[@]}"; do echo "$row"; done
echo
echo "s_conn: most slow connections slowhttptest reported connected at once; s_closed: closed by"
echo "the server by the end; s_avail: slowhttptest's own probe (service available) at the end."
if [[ $CHECK == 1 ]]; then
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        printf 'slow-clients: FAILED: %s\n' "${FAILED[@]}" >&2
        exit 1
    fi
    echo "check: no healthy-client error in any mode, RSS peak <= $RSS_MAX_MIB MiB"
fi
exit 0
