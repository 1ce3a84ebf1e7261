#!/usr/bin/env bash
# Runs the tests that exercise pool-core's unsafe code (the per-thread
# cache, reached through every checkout and return) under Miri, which
# checks for undefined behaviour: aliasing violations, data races, use of
# uninitialised memory, leaks. Iteration counts shrink under cfg(miri).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
cargo +nightly miri test -p pool-core --features bytes --target-dir target/miri \
    --lib --test stress --test lifecycle --test bytes_mut --test bad_input "$@"
