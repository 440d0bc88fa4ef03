#!/usr/bin/env bash
# Schema-driven fuzz of the live API: schemathesis (PyPI, pinned) reads
# /openapi.json from a fresh server and sends it generated requests, valid
# and invalid, to every operation. Fails (non-zero) on any 5xx, on a
# response that contradicts the document, on a crash or a panic.
#
#   tests/schemathesis/run.sh
#
# Environment (all optional):
#   CARGO_TARGET_DIR   where the server binary and the venv live (default: target)
#   SECKILL_BIN        the server binary (default: $CARGO_TARGET_DIR/debug/seckill, built if missing)
#   MAX_EXAMPLES       generated cases per operation and phase (default 40)
#   MAX_TIME_S         schemathesis's time budget in seconds (default 120)
#   SEED               schemathesis's seed (default: a random one, printed)
#   SCHEMATHESIS_ARGS  more arguments for `schemathesis run`, split on spaces
#                      (e.g. "--include-operation-id buy --report vcr")
#   REPORT_DIR         where to keep schemathesis's JUnit reports (default: deleted)
#
# Needs python3 with venv and pip, and PyPI. Prints the figures; the whole
# run takes at most about 3 minutes once the venv exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/schemathesis-venv
BIN=${SECKILL_BIN:-$TARGET/debug/seckill}
MAX_EXAMPLES=${MAX_EXAMPLES:-40}
MAX_TIME_S=${MAX_TIME_S:-120}
SEED=${SEED:-$RANDOM$RANDOM}

command -v python3 >/dev/null || { echo "schemathesis: python3 is needed" >&2; exit 2; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  echo "schemathesis: installing $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if [ ! -x "$BIN" ]; then
  cargo build --locked --bin seckill
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-schemathesis.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
REPORT_DIR=${REPORT_DIR:-$WORK/report}

# Cheap argon2 so that registrations and logins take microseconds; rate
# limits off so that every generated request reaches its endpoint.
(
  cd "$WORK"
  exec "$BIN" --listen 127.0.0.1:0 \
    --store "sqlite://$WORK/data/seckill.db" \
    --set server.data_dir="$WORK/data" \
    --set auth.argon2_memory_kib=64 --set auth.argon2_iterations=1 \
    --set limits.per_user_rps=0 --set limits.per_ip_rps=0
) >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!

BASE=
for _ in $(seq 300); do
  BASE=$(sed -n 's/^listening on \(http:\/\/[^ ]*\)$/\1/p' "$WORK/stdout")
  [ -n "$BASE" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "schemathesis: the server exited at start-up:" >&2; cat "$WORK/stderr" >&2; exit 1; }
  sleep 0.1
done
[ -n "$BASE" ] || { echo "schemathesis: no 'listening on' line within 30 s" >&2; cat "$WORK/stderr" >&2; exit 1; }
for _ in $(seq 50); do
  [ -s "$WORK/data/admin_token" ] && break
  sleep 0.1
done
SECKILL_ADMIN_TOKEN=$(cat "$WORK/data/admin_token")
export SECKILL_ADMIN_TOKEN
python3 tests/schemathesis/seed.py "$BASE" "$SECKILL_ADMIN_TOKEN" >"$WORK/seed.env"
set -a
. "$WORK/seed.env"
set +a
echo "schemathesis: server $BASE (pid $SERVER_PID), seeded item 1, user $SECKILL_USER_ID, order $SECKILL_ORDER_ID; seed $SEED"

# Logout ends the session it is given, so it runs last, on a session of
# its own (schemathesis reuses a Cookie header it has seen on one operation
# for the others, so the two cannot share a run).
run_schemathesis() {
  local config=$1 budget_s=$2
  shift 2
  # From the work dir: schemathesis keeps a cache in its working directory.
  # One worker: with two, hypothesis's ast.parse in threads trips a CPython
  # 3.11 bug ("AST constructor recursion depth mismatch").
  (cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$ROOT/tests/schemathesis/$config" run "$BASE/openapi.json" \
    --url "$BASE" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" --max-time "$budget_s" --seed "$SEED" \
    --request-timeout 35 --workers 1 --suppress-health-check all \
    "$@" ${SCHEMATHESIS_ARGS:-}) 2>&1 | tee -a "$WORK/schemathesis.log"
}
status=0
run_schemathesis schemathesis.toml "$MAX_TIME_S" --exclude-operation-id logout \
  --report junit --report-dir "$REPORT_DIR" --report-junit-path "$REPORT_DIR/junit-main.xml" || status=$?
run_schemathesis logout.toml 10 --include-operation-id logout \
  --report junit --report-dir "$REPORT_DIR" --report-junit-path "$REPORT_DIR/junit-logout.xml" || status=$?

verdict() {
  echo "schemathesis: $*" >&2
  echo "--- server stderr (last 40 lines) ---" >&2
  tail -n 40 "$WORK/stderr" >&2
  exit 1
}
kill -0 "$SERVER_PID" 2>/dev/null || verdict "the server died during the run"
python3 - "$BASE" "$SECKILL_SESSION" <<'EOF' || verdict "the server no longer answers, or the run's session was lost"
import sys, urllib.request
base, session = sys.argv[1], sys.argv[2]
assert urllib.request.urlopen(base + "/healthz", timeout=10).status == 200
me = urllib.request.Request(base + "/api/me", headers={"Cookie": "session=" + session})
assert urllib.request.urlopen(me, timeout=10).status == 200
EOF
if grep -q '"level":"error"\|panicked' "$WORK/stderr"; then
  grep '"level":"error"\|panicked' "$WORK/stderr" | head -20 >&2
  verdict "the server logged errors or a panic"
fi
python3 - "$REPORT_DIR" <<'EOF'
import glob, sys, xml.etree.ElementTree as ET
cases = failures = errors = skipped = 0
for path in glob.glob(sys.argv[1] + "/*.xml"):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        cases += int(suite.get("tests", 0))
        failures += int(suite.get("failures", 0))
        errors += int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
print(f"schemathesis: {cases} operations tested, {failures} failed, {errors} errors, {skipped} skipped")
EOF
grep -h -A1 '^Test cases:' "$WORK/schemathesis.log" | sed -n 's/^ *\([0-9].*\)/schemathesis: test cases: \1/p'
[ "$status" -eq 0 ] || { echo "schemathesis: failed (exit $status); reproduce with SEED=$SEED" >&2; exit "$status"; }
echo "schemathesis: no 5xx, no response outside the document, server alive"
