#!/usr/bin/env bash
# Issue 10's CI run of the fault campaign: `seckill-bench nemesis` with 100
# faults (at least 14 instance kills, 14 pauses past --pause-ms, 8 Redis and
# 8 MariaDB crashes, the rest through the TCP proxies) during sales on three
# instances behind nginx, on a redis-server and a mariadbd of its own.
# The seed is random unless SEED is set, and always printed; a broken
# promise prints the command that replays it and exits 3.
#
#   tests/nemesis/run.sh                  # the CI size
#   FAULTS=1000 tests/nemesis/run.sh      # a longer run
#   SEED=42 tests/nemesis/run.sh --json nemesis.json
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
bench=${BENCH:-$target/debug/seckill-bench}
seckill=${SECKILL:-$target/debug/seckill}
args=(nemesis --seckill "$seckill" --faults "${FAULTS:-100}")
if [[ -n "${SEED:-}" ]]; then
  args+=(--seed "$SEED")
fi
exec "$bench" "${args[@]}" "$@"
