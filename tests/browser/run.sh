#!/usr/bin/env bash
# The web pages end to end in a real browser (issue 11): headless Chromium
# (Debian's `chromium`) driven by playwright-core from npm. Starts two debug
# servers on 127.0.0.1:0, each in its own data directory — one confirming
# buys synchronously (200), one asynchronously (202, the page polls
# /result) — and runs page.test.mjs against both with node's test runner.
#
#   tests/browser/run.sh
#
# Environment (all optional):
#   CARGO_TARGET_DIR  where the server binary is (default: target)
#   SECKILL_BIN       the server binary (default: $CARGO_TARGET_DIR/debug/seckill, built if missing)
#   CHROMIUM          the browser (default: /usr/bin/chromium)
#   ARTIFACTS         where screenshots go (default: $CARGO_TARGET_DIR/browser-artifacts)
#
# Needs node ≥ 20, npm and chromium (`apt-get install -y chromium`).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/tests/browser

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${SECKILL_BIN:-$TARGET/debug/seckill}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export ARTIFACTS=${ARTIFACTS:-$TARGET/browser-artifacts}

command -v node >/dev/null || { echo "browser: node is needed" >&2; exit 2; }
[ -x "$CHROMIUM" ] || { echo "browser: $CHROMIUM is missing (apt-get install -y chromium)" >&2; exit 2; }
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund)
fi
if [ ! -x "$BIN" ]; then
  cargo build --locked --bin seckill
fi
mkdir -p "$ARTIFACTS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-browser.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The salt the pages must carry into their password hash; the test checks
# that a login computed from it outside the browser is accepted.
export SECKILL_CLIENT_SALT=browser-salt-42

# start NAME CONFIRM: a server in $WORK/NAME; sets URL and ADMIN_TOKEN.
start() {
  local name=$1 confirm=$2 dir=$WORK/$1
  mkdir -p "$dir"
  # Cheap argon2: a debug build hashes slowly, and the test is about the page.
  (
    cd "$dir"
    exec "$BIN" --listen 127.0.0.1:0 \
      --set auth.argon2_memory_kib=64 --set auth.argon2_iterations=1 \
      --set auth.client_salt="$SECKILL_CLIENT_SALT" \
      --set sale.confirm="$confirm"
  ) >"$dir/stdout" 2>"$dir/stderr" &
  PIDS+=($!)
  URL=
  for _ in $(seq 300); do
    URL=$(sed -n 's/^listening on \(http:\/\/[^ ]*\)$/\1/p' "$dir/stdout")
    [ -n "$URL" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "browser: $name exited at start-up:" >&2; cat "$dir/stderr" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$URL" ] || { echo "browser: $name printed no 'listening on' line within 30 s" >&2; cat "$dir/stderr" >&2; exit 1; }
  for _ in $(seq 50); do
    [ -s "$dir/data/admin_token" ] && break
    sleep 0.1
  done
  ADMIN_TOKEN=$(cat "$dir/data/admin_token")
}

start sync sync
export SECKILL_SYNC_URL=$URL SECKILL_SYNC_ADMIN=$ADMIN_TOKEN
start async async
export SECKILL_ASYNC_URL=$URL SECKILL_ASYNC_ADMIN=$ADMIN_TOKEN

status=0
node --test --test-concurrency=1 "$HERE/page.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  for name in sync async; do echo "--- $name server stderr (tail) ---" >&2; tail -n 30 "$WORK/$name/stderr" >&2; done
fi
echo "browser: screenshots in $ARTIFACTS"
exit "$status"
