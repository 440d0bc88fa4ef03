#!/usr/bin/env bash
# Issue 5's performance figures: the buy (POST /api/seckill/{path}) against
# GET /healthz on the same server, alternating in one run, on the embedded
# default store with sync confirmation. Loopback only.
#
#   bench/buy-figures.sh            # 3 scenarios x 3 pairs of 5 s runs (~2 min)
#   PAIRS=1 DURATION=2 bench/buy-figures.sh   # a quick look
#
# Scenarios (10,000 users with sessions and paths each, 64 connections):
#   sold out      stock 1, bought by the first user before the runs → 410
#                 (that one user gets 409: the per-user check comes first)
#   limit reached per-user limit 1, every user bought once before → 409
#   success       10,000,000 units, per-user limit 1,000,000 → 200, durable
#
# Environment:
#   USERS=10000 CONNECTIONS=64 PAIRS=3 DURATION=5 WARMUP=1 THREADS=2
#   PIPELINE=1         requests outstanding per connection (buys and /healthz);
#                      with sync confirmation a group commit can hold at most
#                      CONNECTIONS x PIPELINE orders
#   SCENARIOS="soldout limit success"
#   STRACE=auto        1/auto: one more success run on a second server started
#                      under `strace -f --seccomp-bpf -e trace=fsync,fdatasync`,
#                      counting the fsyncs the kernel saw per 1,000 orders
#                      (only those calls stop the server); 0: skip it
#   SECKILL_SET="..."  extra `--set K=V` for the server, space separated
#   KEEP=1             keep the temporary directory (server logs, JSON)
#
# The server's rate limits and pending-order bound are set far above the load
# (not binding), and the sale path lives an hour. Figures are printed, not asserted; the exit status
# is 0 unless a tool fails. "fsyncs/1k" is the change of the server's commit
# counter in /metrics (an fsync counter, else group-commit batches: one
# transaction and one WAL fsync each) per 1,000 orders written, warm-ups
# included; "n/a" when /metrics exposes neither.
set -euo pipefail

USERS=${USERS:-10000}
CONNECTIONS=${CONNECTIONS:-64}
PAIRS=${PAIRS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-2}
PIPELINE=${PIPELINE:-1}
SCENARIOS=${SCENARIOS:-"soldout limit success"}
SECKILL_SET=${SECKILL_SET:-}
STRACE=${STRACE:-auto}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-"$ROOT/target"}
BENCH="$TARGET_DIR/release/seckill-bench"
SECKILL="$TARGET_DIR/release/seckill"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-buy.XXXXXX")
PIDS=()
TRACEES=()

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'buy-figures: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local pid
    # A server under strace is stopped itself (strace then exits with it).
    for pid in "${TRACEES[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v python3 >/dev/null || die "python3 is needed to read seckill-bench's JSON"
log "building release binaries"
(cd "$ROOT" && cargo build --release -p seckill -p seckill-bench >&2) || die "cargo build failed"

# --- server ------------------------------------------------------------------

# Bounds that would otherwise bind during the success runs: every order stays
# pending payment for the whole run, and an instance tracks at most
# sale.pending_orders_max of them (262,144 by default, then 503 overloaded);
# 2,000,000 (≈160 MB, allocated at start) covers ≈30 s at 60,000 orders/s.
SERVER_ARGS=(
    --set sale.confirm=sync
    --set sale.pending_orders_max=2000000
    --set sale.path_ttl_ms=3600000
    --set limits.per_user_rps=100000 --set limits.per_user_burst=100000
    --set limits.per_ip_rps=100000000 --set limits.per_ip_burst=100000000
)
for kv in $SECKILL_SET; do SERVER_ARGS+=(--set "$kv"); done

start_seckill() { # NAME [WRAPPER...]: sets SECKILL_PID, ADDR, DATA
    local name=$1 dir="$WORK/$1" i
    shift
    DATA="$dir/data"
    mkdir -p "$DATA"
    (cd "$dir" && exec "$@" "$SECKILL" --listen 127.0.0.1:0 --set server.data_dir="$DATA" \
        "${SERVER_ARGS[@]}" >"$dir/seckill.out" 2>"$dir/seckill.err") &
    SECKILL_PID=$!
    PIDS+=("$SECKILL_PID")
    ADDR=""
    for i in $(seq 300); do
        ADDR=$(sed -n 's|^listening on http://\([^/ ]*\).*|\1|p' "$dir/seckill.out" | head -n1)
        [[ -n $ADDR ]] && grep -q '^admin token: ' "$dir/seckill.err" && break
        kill -0 "$SECKILL_PID" 2>/dev/null || { cat "$dir/seckill.err" >&2; die "seckill ($name) exited"; }
        sleep 0.1
    done
    grep -q '^admin token: ' "$dir/seckill.err" && [[ -n $ADDR ]] ||
        die "seckill ($name) printed no 'listening on' / 'admin token:' line in 30 s"
    sed -n 's/^admin token: //p' "$dir/seckill.err" | head -n1 >"$dir/admin_token"
}

start_seckill main
echo "server: $SECKILL --listen 127.0.0.1:0 --set server.data_dir=DIR ${SERVER_ARGS[*]}"
echo "store:  $(grep -o '"setting":"[a-z_]*","value":"[A-Za-z]*"' "$WORK/main/seckill.err" |
    sed 's/"setting":"\([a-z_]*\)","value":"\([A-Za-z]*\)"/\1=\2/' | paste -sd' ' -)"
echo "cores:  $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg); load: $USERS users, $CONNECTIONS connections, pipeline $PIPELINE, $THREADS threads, $PAIRS pairs of ${DURATION}s (+${WARMUP}s warm-up) buy / healthz runs"
echo

# --- scenarios ---------------------------------------------------------------

# name item stock per_user_limit prebuy target
scenario_args() {
    case $1 in
        soldout) echo "11 1 1 1" ;;
        limit) echo "12 $((USERS * 2)) 1 all" ;;
        success) echo "13 10000000 1000000 0" ;;
        *) die "unknown scenario $1" ;;
    esac
}
scenario_name() {
    case $1 in
        soldout) echo "refusal: sold out" ;;
        limit) echo "refusal: limit reached" ;;
        success) echo "success" ;;
    esac
}
scenario_target() {
    case $1 in
        success) echo "ratio >= 0.6, p99 <= 5 ms" ;;
        *) echo "ratio >= 0.9" ;;
    esac
}

ROWS=()
for s in $SCENARIOS; do
    read -r item stock limit prebuy <<<"$(scenario_args "$s")"
    cmd=("$BENCH" buy --target "http://$ADDR" --admin-token-file "$WORK/main/admin_token"
        --item "$item" --stock "$stock" --per-user-limit "$limit" --prebuy "$prebuy"
        --users "$USERS" -c "$CONNECTIONS" -t "$THREADS" --pipeline "$PIPELINE"
        -d "${DURATION}s" --warmup "${WARMUP}s" --alternate-healthz "$PAIRS" --json "$WORK/$s.json")
    log "$(scenario_name "$s"): ${cmd[*]/#$WORK/\$WORK}"
    "${cmd[@]}" >"$WORK/$s.log" 2>&1 || { cat "$WORK/$s.log" >&2; die "seckill-bench buy failed ($s)"; }
    sed 's/^/    /' "$WORK/$s.log" | grep -v '^    seckill-bench buy:' >&2
    ROWS+=("$(python3 - "$WORK/$s.json" "$(scenario_name "$s")" "$(scenario_target "$s")" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
name, target = sys.argv[2], sys.argv[3]
med = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v)//2 - 1:len(v)//2 + 1]) / 2
buy = med([r["requests_per_s"] for r in j["buy"]])
hz = med([r["requests_per_s"] for r in j["healthz"]])
status = {}
for r in j["buy"]:
    for k, v in r["status"].items():
        status[k] = status.get(k, 0) + v
total = sum(status.values()) or 1
top = ", ".join(f"{k} {100 * v / total:.2f}%" for k, v in sorted(status.items(), key=lambda kv: -kv[1]))
c = j["commits"]
fs = "n/a" if c["commits_per_1000_orders"] is None else f"{c['commits_per_1000_orders']:.2f}"
if c.get("commit_latency_ms_mean") is not None:
    fs += f" ({c['commit_latency_ms_mean']:.1f} ms/commit)"
durable = f"{c['acknowledged']}/{c['orders']}"
print(f"| {name} | {buy:,.0f} | {hz:,.0f} | {j['ratio_median']:.3f} | {j['buy_p99_median_us'] / 1000:.2f} ms "
      f"| {j['healthz_p99_median_us'] / 1000:.2f} ms | {top} | {durable} | {fs} | {target} |")
EOF
)")
done

echo
echo "| scenario | buy req/s | /healthz req/s | ratio (median) | buy p99 | /healthz p99 | buy statuses | 200s/orders | fsyncs/1k orders | target |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "req/s and p99: medians over $PAIRS pairs; 200s/orders: 200 answers received / orders the store gained (warm-ups included; a 200 is sent only once its order is durable)."

# --- fsyncs seen by the kernel -------------------------------------------------

use_strace=0
case $STRACE in
    1) use_strace=1 ;;
    auto) command -v strace >/dev/null && use_strace=1 ;;
esac
if [[ $use_strace == 1 ]]; then
    command -v strace >/dev/null || die "STRACE=1 but strace is not installed"
    trace="$WORK/strace/fsync.trace"
    mkdir -p "$WORK/strace"
    start_seckill strace strace -f -qq --seccomp-bpf -ttt -e trace=fsync,fdatasync -o "$trace"
    read -r -a children <"/proc/$SECKILL_PID/task/$SECKILL_PID/children" || true
    TRACEES+=("${children[@]}")
    cmd=("$BENCH" buy --target "http://$ADDR" --admin-token-file "$WORK/strace/admin_token"
        --item 13 --stock 10000000 --per-user-limit 1000000 --users "$USERS"
        -c "$CONNECTIONS" -t "$THREADS" --pipeline "$PIPELINE" -d "${DURATION}s" --warmup "${WARMUP}s"
        --json "$WORK/strace.json")
    log "success under strace: ${cmd[*]/#$WORK/\$WORK}"
    "${cmd[@]}" >"$WORK/strace.log" 2>&1 || { cat "$WORK/strace.log" >&2; die "seckill-bench buy failed (strace)"; }
    python3 - "$WORK/strace.json" "$trace" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
c = j["commits"]
lo, hi = c["window_start_ms"] / 1000, c["window_end_ms"] / 1000
calls = 0
for line in open(sys.argv[2]):
    parts = line.split(None, 2)  # PID TIME CALL...
    if len(parts) < 3 or "resumed>" in parts[2]:
        continue
    if parts[2].startswith(("fsync(", "fdatasync(")) and lo <= float(parts[1]) <= hi:
        calls += 1
orders = c["orders"]
per = f"{1000 * calls / orders:.2f}" if orders else "n/a"
by_metrics = "n/a" if c["commits_per_1000_orders"] is None else f"{c['commits_per_1000_orders']:.2f}"
rps = j["buy"][0]["requests_per_s"]
print(f"fsyncs under strace (success path, {rps:,.0f} buy req/s): {calls} fsync/fdatasync calls for {orders} orders "
      f"({per} per 1,000 orders; /metrics says {by_metrics})")
EOF
fi
