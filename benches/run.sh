#!/usr/bin/env bash
# Builds the compare runner once per global allocator (system, jemalloc,
# mimalloc), plus once with pool-tokio's `tracing` feature (for W6), and
# runs the builds side by side in one run: every point runs under each
# allocator build in turn, and rows carry the allocator.
#
#   benches/run.sh --quick
#   benches/run.sh --threads 1,2 --out target/compare-full
#
# Arguments go to `compare` unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=target/compare-bins
mkdir -p "$bins"
for alloc in system jemalloc mimalloc; do
  features=()
  if [ "$alloc" != system ]; then features=(--features "$alloc"); fi
  cargo build --quiet --release -p benches --bin compare "${features[@]}"
  cp target/release/compare "$bins/compare-$alloc"
done
cargo build --quiet --release -p benches --bin compare --features tracing
cp target/release/compare "$bins/compare-system-tracing"
exec "$bins/compare-system" --bins "$bins/compare-jemalloc,$bins/compare-mimalloc" \
  --tracing-bin "$bins/compare-system-tracing" "$@"
