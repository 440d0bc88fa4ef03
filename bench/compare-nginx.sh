#!/usr/bin/env bash
# Issue 3's performance comparison, end to end: seckill (each reactor design)
# against nginx answering `return 200` with the same body as our /healthz.
#
#   bench/compare-nginx.sh                 # the full run (~12 min)
#   PAIRS=2 DURATION=3 bench/compare-nginx.sh    # a quick look
#
# Environment:
#   PAIRS=5            alternating nginx/seckill pairs per measurement
#   DURATION=10        seconds per wrk / seckill-bench run
#   DESIGNS="reuseport acceptor"   seckill's server.reactor values to compare
#   IDLE_CONNECTIONS=10000         connections for the idle-RSS measurement
#   IDLE_HOLD=5s                   how long they are held
#   NGINX_ONLY=1       measure nginx alone (to check the harness before the server exists)
#   SECKILL=path       the server binary [target/release/seckill]; it must take
#                      --listen and --set server.reactor=..., and print
#                      `listening on http://HOST:PORT` on stdout when ready
#   KEEP=1             keep the temporary directory (configs, logs, JSON)
#
# Measurements, per design (the machine is noisy: runs alternate, and the
# table shows medians and ratios):
#   1. wrk -t2 -c64 on /healthz: requests/s, and each server's CPU seconds
#      (utime+stime from /proc, all its processes) per million requests.
#   2. seckill-bench open loop at 50% of nginx's median peak: p99 latency
#      corrected for coordinated omission.
#   3. seckill-bench against seckill, pipelined 16 deep vs unpipelined.
#   4. seckill-bench idle: RSS difference per idle keep-alive connection, on a
#      freshly started server.
set -euo pipefail

PAIRS=${PAIRS:-5}
DURATION=${DURATION:-10}
DESIGNS=${DESIGNS:-"reuseport acceptor"}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5s}
NGINX_ONLY=${NGINX_ONLY:-0}
KEEP=${KEEP:-0}
CONNECTIONS=64

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/target/release/seckill-bench"
SECKILL=${SECKILL:-"$ROOT/target/release/seckill"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-compare.XXXXXX")
RESULTS="$WORK/results.tsv"
CLK_TCK=$(getconf CLK_TCK)
PIDS=()

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'compare-nginx: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------

install_tools() {
    local missing=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v python3 >/dev/null || missing+=(python3)
    [[ ${#missing[@]} == 0 ]] && return
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    log "installing ${missing[*]}"
    $sudo apt-get install -y "${missing[@]}" >&2 ||
        { $sudo apt-get update >&2 && $sudo apt-get install -y "${missing[@]}" >&2; }
}

# --- processes ---------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # PORT: wait until something accepts on 127.0.0.1:PORT
    local i
    for i in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "nothing listening on port $1 after 10 s"
}

# CPU ticks (utime+stime) of PID and its child processes (nginx's workers).
cpu_ticks() {
    local pids=("$1") pid total=0 stat fields
    local children="/proc/$1/task/$1/children"
    if [[ -r $children ]]; then
        read -r -a fields <"$children" || true
        pids+=("${fields[@]}")
    else
        pids+=($(pgrep -P "$1" || true))
    fi
    for pid in "${pids[@]}"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Fields after the command name (which may hold spaces) start at field 3.
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

start_nginx() {
    NGINX_PORT=$(free_port)
    local dir="$WORK/nginx"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 65536;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 32768; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
    uwsgi_temp_path $dir; scgi_temp_path $dir;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        location /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
EOF
    local nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    "$nginx" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/stderr.log" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_port "$NGINX_PORT"
    log "nginx pid $NGINX_PID on port $NGINX_PORT"
}

start_seckill() { # DESIGN: sets SECKILL_PID, SECKILL_ADDR
    local out="$WORK/seckill-$1.out" i
    "$SECKILL" --listen 127.0.0.1:0 --set "server.reactor=$1" >"$out" 2>"$WORK/seckill-$1.err" &
    SECKILL_PID=$!
    PIDS+=("$SECKILL_PID")
    for i in $(seq 400); do
        SECKILL_ADDR=$(sed -n 's|^listening on http://\([^/ ]*\).*|\1|p' "$out" | head -n1)
        [[ -n $SECKILL_ADDR ]] && break
        kill -0 "$SECKILL_PID" 2>/dev/null || die "seckill ($1) exited: $(tail -n5 "$WORK/seckill-$1.err")"
        sleep 0.05
    done
    [[ -n $SECKILL_ADDR ]] || die "seckill ($1) printed no 'listening on' line in 20 s"
    wait_port "${SECKILL_ADDR##*:}"
    log "seckill ($1) pid $SECKILL_PID on $SECKILL_ADDR"
}

stop_seckill() {
    kill "$SECKILL_PID" 2>/dev/null || true
    wait "$SECKILL_PID" 2>/dev/null || true
}

# --- measurements ------------------------------------------------------------

record() { # DESIGN METRIC SERVER VALUE
    printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

json_get() { # FILE KEY.PATH
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$1" "$2"
}

wrk_run() { # DESIGN SERVER ADDR PID
    local before after out requests rate
    before=$(cpu_ticks "$4")
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://$3/healthz")
    after=$(cpu_ticks "$4")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    rate=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    grep -q 'Non-2xx\|Socket errors' <<<"$out" && log "wrk against $2: $(grep 'Non-2xx\|Socket errors' <<<"$out")"
    [[ -n $requests && $requests -gt 0 ]] || die "wrk against $2 completed no request: $out"
    record "$1" rps "$2" "$rate"
    record "$1" cpu_s_per_M "$2" "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { printf "%.3f", t / hz / (n / 1e6) }')"
    log "$1 wrk $2: $rate req/s, $(((after - before) * 1000 / CLK_TCK)) ms CPU"
}

bench_run() { # DESIGN METRIC SERVER ADDR ARGS...: records the JSON field named by METRIC
    local design=$1 metric=$2 server=$3 addr=$4 json="$WORK/bench-$RANDOM$RANDOM.json" field
    shift 4
    "$BENCH" -c "$CONNECTIONS" -t 2 -d "${DURATION}s" "$@" --json "$json" "http://$addr/healthz" >/dev/null ||
        die "seckill-bench against $server failed: $*"
    case $metric in
        p99) field=latency_us.p99 ;;
        *) field=requests_per_s ;;
    esac
    record "$design" "$metric" "$server" "$(json_get "$json" "$field")"
    local unsent errors
    unsent=$(json_get "$json" unsent)
    errors=$(python3 -c 'import json, sys; print(sum(json.load(open(sys.argv[1]))["errors"].values()))' "$json")
    [[ $unsent == 0 && $errors == 0 ]] || log "note: $server $metric run had $errors errors, $unsent unsent"
    log "$design $metric $server: $(json_get "$json" "$field")"
}

median_of() { # DESIGN METRIC SERVER
    awk -F'\t' -v d="$1" -v m="$2" -v s="$3" '$1 == d && $2 == m && $3 == s { print $4 }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

compare_design() { # DESIGN
    local design=$1 i
    if [[ $NGINX_ONLY != 1 ]]; then start_seckill "$design"; fi
    local nginx_addr="127.0.0.1:$NGINX_PORT"

    log "$design: 1. wrk -t2 -c$CONNECTIONS, $PAIRS pairs of ${DURATION}s"
    for i in $(seq "$PAIRS"); do
        # Alternate who goes first, so neither always runs on a warmer machine.
        if ((i % 2)) || [[ $NGINX_ONLY == 1 ]]; then
            wrk_run "$design" nginx "$nginx_addr" "$NGINX_PID"
            [[ $NGINX_ONLY == 1 ]] || wrk_run "$design" seckill "$SECKILL_ADDR" "$SECKILL_PID"
        else
            wrk_run "$design" seckill "$SECKILL_ADDR" "$SECKILL_PID"
            wrk_run "$design" nginx "$nginx_addr" "$NGINX_PID"
        fi
    done

    local rate
    rate=$(awk -v r="$(median_of "$design" rps nginx)" 'BEGIN { printf "%.0f", r / 2 }')
    record "$design" open_rate nginx "$rate"
    log "$design: 2. open loop at $rate req/s (50% of nginx's median), $PAIRS pairs"
    for i in $(seq "$PAIRS"); do
        bench_run "$design" p99 nginx "$nginx_addr" --rate "$rate" --warmup 1s
        [[ $NGINX_ONLY == 1 ]] || bench_run "$design" p99 seckill "$SECKILL_ADDR" --rate "$rate" --warmup 1s
    done

    if [[ $NGINX_ONLY == 1 ]]; then
        log "$design: 3. pipelined 16 vs unpipelined (nginx, for reference)"
        for i in $(seq "$PAIRS"); do
            bench_run "$design" rps_p16 nginx "$nginx_addr" --pipeline 16
            bench_run "$design" rps_p1 nginx "$nginx_addr"
        done
        return
    fi

    log "$design: 3. seckill pipelined 16 vs unpipelined, $PAIRS pairs"
    for i in $(seq "$PAIRS"); do
        bench_run "$design" rps_p16 seckill "$SECKILL_ADDR" --pipeline 16
        bench_run "$design" rps_p1 seckill "$SECKILL_ADDR"
    done

    # A fresh server: buffers pooled during the load runs would otherwise
    # already be in the "before" RSS and hide what idle connections cost.
    stop_seckill
    start_seckill "$design"
    log "$design: 4. $IDLE_CONNECTIONS idle keep-alive connections held $IDLE_HOLD"
    local json="$WORK/idle-$design.json"
    "$BENCH" idle --connections "$IDLE_CONNECTIONS" --hold "$IDLE_HOLD" --pid "$SECKILL_PID" \
        --json "$json" "http://$SECKILL_ADDR/healthz" >&2 || log "note: the idle run reported failures"
    record "$design" idle_held seckill "$(json_get "$json" held)"
    record "$design" idle_bytes_per_conn seckill "$(json_get "$json" rss_per_connection_bytes)"
    stop_seckill
}

report() {
    python3 - "$RESULTS" "$PAIRS" "$DURATION" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    design, metric, server, value = line.rstrip("\n").split("\t")
    if value not in ("", "None"):
        rows[(design, metric, server)].append(float(value))
designs = list(dict.fromkeys(d for d, _, _ in rows))
def med(d, m, s):
    v = rows.get((d, m, s))
    return statistics.median(v) if v else None
def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"
def num(x, fmt="{:,.0f}"):
    return "-" if x is None else fmt.format(x)
print(f"\nseckill vs nginx: medians of {sys.argv[2]} alternating runs of {sys.argv[3]} s each")
head = f"{'':38}" + "".join(f"{d:>40}" for d in designs) + "   target"
print(head)
print("-" * len(head))
def line(label, cells, target):
    print(f"{label:38}" + "".join(f"{c:>40}" for c in cells) + f"   {target}")
line("wrk req/s  seckill / nginx",
     [f"{num(med(d,'rps','seckill'))} / {num(med(d,'rps','nginx'))} = {ratio(med(d,'rps','seckill'), med(d,'rps','nginx'))}" for d in designs],
     ">= 1.2x")
line("CPU s per M req  seckill / nginx",
     [f"{num(med(d,'cpu_s_per_M','seckill'),'{:.2f}')} / {num(med(d,'cpu_s_per_M','nginx'),'{:.2f}')} = {ratio(med(d,'cpu_s_per_M','seckill'), med(d,'cpu_s_per_M','nginx'))}" for d in designs],
     "<= 0.8x (if both at the ceiling)")
line("open-loop rate (50% nginx), req/s", [num(med(d,'open_rate','nginx')) for d in designs], "")
line("open-loop p99 us  seckill / nginx",
     [f"{num(med(d,'p99','seckill'),'{:.0f}')} / {num(med(d,'p99','nginx'),'{:.0f}')} = {ratio(med(d,'p99','seckill'), med(d,'p99','nginx'))}" for d in designs],
     "<= 1.1x")
who = lambda d: "seckill" if rows.get((d, 'rps_p16', 'seckill')) else "nginx"
line("pipelined 16 / unpipelined req/s",
     [f"{who(d)}: {num(med(d,'rps_p16',who(d)))} / {num(med(d,'rps_p1',who(d)))} = {ratio(med(d,'rps_p16',who(d)), med(d,'rps_p1',who(d)))}" for d in designs],
     ">= 6x (seckill)")
line("idle keep-alive: bytes RSS per conn",
     [f"{num(med(d,'idle_bytes_per_conn','seckill'))} ({num(med(d,'idle_held','seckill'))} held)" for d in designs],
     "<= 4096")
EOF
}

# --- main --------------------------------------------------------------------

install_tools
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
(( $(ulimit -n) > IDLE_CONNECTIONS + 100 )) || log "warning: ulimit -n is $(ulimit -n), below $IDLE_CONNECTIONS idle connections"

log "building (release)"
if [[ $NGINX_ONLY == 1 || $SECKILL != "$ROOT/target/release/seckill" ]]; then
    (cd "$ROOT" && cargo build --release -p seckill-bench) >&2
else
    (cd "$ROOT" && cargo build --release -p seckill -p seckill-bench) >&2
fi

: >"$RESULTS"
start_nginx
for design in $DESIGNS; do
    compare_design "$design"
    [[ $NGINX_ONLY == 1 ]] && break # nginx does not depend on the design
done
report
