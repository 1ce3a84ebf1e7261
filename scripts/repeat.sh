#!/usr/bin/env bash
# Runs the multi-thread test suites many times in a row to catch flaky
# tests: a test that fails one run in fifteen is a bug. The test binaries
# are built once (`cargo test --no-run`) and then run directly, so each
# iteration costs run time only. Stops at the first failure and says which
# binary and which iteration.
#
# Usage: scripts/repeat.sh [iterations]   (default 10, or $REPEAT)
set -euo pipefail

# Multi-thread integration tests, per package and feature set. Edit these
# lists when test files are added or renamed.
POOL_CORE_TESTS=(
    stress
    lifecycle
    memory_bounded
    alloc_free
    fast_path_alloc
    thread_exit
)
POOL_TOKIO_TESTS=(
    pooled_bytes
    budget
    faults
    runtime_hooks
    splits_and_freeze
    budget_exact
    fuzz_ops
    runtime_integration
    thread_exit
    frame_budget
    length_delimited
    runtime_policy
)
# Built with pool-tokio's `diagnostics` feature.
POOL_TOKIO_DIAGNOSTICS_TESTS=(
    diagnostics
)

ITERATIONS="${1:-${REPEAT:-10}}"
cd "$(dirname "$0")/.."

# Prints the test executables that `cargo test --no-run "$@"` builds.
executables() {
    cargo test --no-run --message-format=json "$@" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p'
}
test_args() { for t in "$@"; do printf -- '--test\n%s\n' "$t"; done; }

mapfile -t args < <(test_args "${POOL_CORE_TESTS[@]}")
mapfile -t bins < <(executables -p pool-core "${args[@]}")
mapfile -t args < <(test_args "${POOL_TOKIO_TESTS[@]}")
mapfile -t more < <(executables -p pool-tokio "${args[@]}")
bins+=("${more[@]}")
mapfile -t args < <(test_args "${POOL_TOKIO_DIAGNOSTICS_TESTS[@]}")
mapfile -t more < <(executables -p pool-tokio --features diagnostics "${args[@]}")
bins+=("${more[@]}")

expected=$((${#POOL_CORE_TESTS[@]} + ${#POOL_TOKIO_TESTS[@]} + ${#POOL_TOKIO_DIAGNOSTICS_TESTS[@]}))
if [ "${#bins[@]}" -ne "$expected" ]; then
    echo "repeat.sh: found ${#bins[@]} test binaries, expected $expected" >&2
    exit 1
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$SECONDS
for ((i = 1; i <= ITERATIONS; i++)); do
    for bin in "${bins[@]}"; do
        if ! "$bin" --quiet >"$log" 2>&1; then
            cat "$log"
            echo "repeat.sh: $(basename "$bin") failed in iteration $i of $ITERATIONS" >&2
            exit 1
        fi
    done
    echo "repeat.sh: iteration $i of $ITERATIONS passed ($((SECONDS - start)) s so far)"
done
echo "repeat.sh: ${#bins[@]} multi-thread test binaries passed $ITERATIONS times in a row"
