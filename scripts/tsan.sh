#!/usr/bin/env bash
# ThreadSanitizer over pool-core's multi-thread tests (stress: buffers and
# values crossing threads through the depot; lifecycle: thread exit,
# thread churn, trim reaching other threads) and pool-tokio's cross-worker
# tests. Needs nightly: std is rebuilt with the sanitizer (-Zbuild-std) so
# that its atomics and locks are instrumented too; otherwise TSan reports
# false races inside std.
#
# Usage: scripts/tsan.sh [extra cargo test args]
set -euo pipefail

# Integration tests run under TSan. Edit these lists when test files are
# added or renamed.
POOL_CORE_TESTS=(
    stress
    lifecycle
    bytes_mut
)
POOL_TOKIO_TESTS=(
    pooled_bytes
    splits_and_freeze
    budget
)

cd "$(dirname "$0")/.."
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    rustup component add --toolchain nightly rust-src
fi
TARGET=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Zsanitizer=thread -Cdebug-assertions"
export RUSTDOCFLAGS="-Zsanitizer=thread"
# Any report fails the run; report every race, not the first only.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 abort_on_error=1 second_deadlock_stack=1}"
tests() { for t in "$@"; do printf -- '--test\n%s\n' "$t"; done; }
mapfile -t core_args < <(tests "${POOL_CORE_TESTS[@]}")
mapfile -t tokio_args < <(tests "${POOL_TOKIO_TESTS[@]}")
# Tests run one at a time so that a report names one test; iteration counts
# are the normal ones (TSan slows the code about 5-15x).
cargo +nightly test -Zbuild-std --target "$TARGET" --target-dir target/tsan \
    -p pool-core --features bytes "${core_args[@]}" "$@" -- --test-threads=1
cargo +nightly test -Zbuild-std --target "$TARGET" --target-dir target/tsan \
    -p pool-tokio "${tokio_args[@]}" "$@" -- --test-threads=1
echo "tsan: no data race reported"
