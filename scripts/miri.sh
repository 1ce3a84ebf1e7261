#!/usr/bin/env bash
# Runs the tests that exercise pool-core's unsafe code (the per-thread
# cache, reached through every checkout and return) under Miri, which
# checks for undefined behaviour: aliasing violations, data races, use of
# uninitialised memory, leaks. Iteration counts shrink under cfg(miri).
#
# Usage: scripts/miri.sh [extra cargo test args]
set -euo pipefail

# Integration tests of pool-core run under Miri (the unit tests, `--lib`,
# always run). Edit this list when test files are added or renamed.
MIRI_TESTS=(
    stress
    lifecycle
    bytes_mut
    bad_input
)
PACKAGE=pool-core
FEATURES=bytes

cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
args=(--lib)
for t in "${MIRI_TESTS[@]}"; do args+=(--test "$t"); done
cargo +nightly miri test -p "$PACKAGE" --features "$FEATURES" --target-dir target/miri \
    "${args[@]}" "$@"

# The panic test of `try_give_back_fast_in_place` (a `Buffer` method
# panicking while the buffer's bits are in two places): the rest of
# `panics.rs` runs child processes, which Miri cannot.
cargo +nightly miri test -p "$PACKAGE" --features "$FEATURES" --target-dir target/miri \
    --test panics "$@" -- in_place

# pool-tokio's own `unsafe` (the guard's `ManuallyDrop` fields and the
# `ptr::read` of its ticket in `Drop`, `into_raw` and the cold return; the
# per-thread stash of a pool's references, which moves `Arc` strong counts
# in and out): the unit tests in `pool.rs`, every way a guard ends, on both
# handles, and those of `runtime/stash.rs`.
cargo +nightly miri test -p pool-tokio --lib --target-dir target/miri -- pool::tests:: runtime::stash::tests::
