#!/usr/bin/env bash
# Model-checks, with loom, every interleaving of the models in
# pool-core/src/loom_tests.rs: the depot protocol (push / take / trim /
# decay / shrink), the slot handoff from an exiting thread to the next
# owner of its id, the engine's trim and reconfigure racing a thread
# that returns and exits, and catch-up (a trim, a decay tick or a
# reconfigure racing the owner's fast-path take and put). Release mode with
# debug assertions, as sharded-slab and tokio run theirs. A failing model
# aborts the test binary (a panic on a loom thread does not unwind): rerun
# one model alone with its full name to see the others.
#
# Usage: scripts/loom.sh [extra test-name filters or libtest args]
set -euo pipefail

# Test-name filters (libtest substring match) selecting the loom models.
# Edit this list when models are added, renamed or moved.
LOOM_FILTERS=(
    loom_tests
)
PACKAGE=pool-core

cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
cargo test -p "$PACKAGE" --release --lib --target-dir target/loom -- "${LOOM_FILTERS[@]}" "$@"
