#!/usr/bin/env bash
# Model-checks the depot protocol (push / take / trim / decay /
# shrink) with loom, exploring every interleaving of the models in
# pool-core/src/loom_tests.rs. Release mode with debug assertions, as
# sharded-slab and tokio run theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
cargo test -p pool-core --release --lib --target-dir target/loom -- loom_tests "$@"
