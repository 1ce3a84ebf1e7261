#!/usr/bin/env bash
# W8: length-delimited echo over loopback (src/bin/w8.rs), plain tokio-util
# `Framed` against pool-tokio's pooled frames, and a per-frame checkout
# against fresh allocations, under glibc and jemalloc in one run: every run
# goes through both builds, contenders alternating.
#
#   benches/w8.sh --quick          # CI: 2 runs of 2 s, 16 connections
#   benches/w8.sh                  # 5 runs of 6 s, 64 and 2,000 connections
#   benches/w8.sh --runs 7 --seconds 10 --connections 128
#   benches/w8.sh --modes checkout,checkout+hooks,fresh   # variants (see w8.rs)
#
# Arguments go to `w8` unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=target/w8-bins
mkdir -p "$bins"
cargo build --quiet --release -p benches --bin w8
cp target/release/w8 "$bins/w8-glibc"
cargo build --quiet --release -p benches --bin w8 --features jemalloc
cp target/release/w8 "$bins/w8-jemalloc"
exec "$bins/w8-glibc" --bins "$bins/w8-jemalloc" "$@"
