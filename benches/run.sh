#!/usr/bin/env bash
# Builds the compare runner once per global allocator (system, jemalloc,
# mimalloc) and runs the three builds side by side in one run: every point
# runs under each build in turn, and rows carry the allocator.
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
exec "$bins/compare-system" --bins "$bins/compare-jemalloc,$bins/compare-mimalloc" "$@"
