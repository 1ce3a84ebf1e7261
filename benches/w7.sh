#!/usr/bin/env bash
# W7: the hyper example server (examples/http_server.rs) under wrk on
# loopback, once per body mode, in one run; prints one markdown table.
#
#   benches/w7.sh                 # all modes, wrk -t2 -c64 -d10s
#   MODES="pooled fresh" DURATION=5 PORT=18080 BODY=4096 benches/w7.sh
#
# Each server runs DURATION + 4 seconds (start-up and drain); allocations per
# request are the server's own steady-state count (see the example's docs).
# wrk and the server share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"fresh pooled pooled-scratch pooled-body static"}
DURATION=${DURATION:-10}
PORT=${PORT:-18080}
BODY=${BODY:-4096}

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk
fi

cargo build --release -q -p examples --example http_server
BIN=${CARGO_TARGET_DIR:-target}/release/examples/http_server

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

declare -A RPS P99 APR HIT CHECKOUTS
for mode in $MODES; do
    "$BIN" --mode "$mode" --seconds $((DURATION + 4)) --port "$PORT" --body-size "$BODY" \
        >"$LOGS/$mode.server" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        grep -q listening "$LOGS/$mode.server" && break
        sleep 0.1
    done
    if ! grep -q listening "$LOGS/$mode.server"; then
        cat "$LOGS/$mode.server" >&2
        kill "$server" 2>/dev/null || true
        exit 1
    fi
    wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/" >"$LOGS/$mode.wrk"
    wait "$server"
    echo "== $mode" >&2
    cat "$LOGS/$mode.wrk" "$LOGS/$mode.server" >&2
    RPS[$mode]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$LOGS/$mode.wrk")
    P99[$mode]=$(awk '$1 == "99%" {print $2}' "$LOGS/$mode.wrk")
    summary=$(grep '^W7 ' "$LOGS/$mode.server")
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$summary"; }
    APR[$mode]=$(field allocs_per_request)
    HIT[$mode]=$(field hit_rate)
    CHECKOUTS[$mode]=$(field checkouts)
done

# Body-path allocations: the mode's count minus the `static` floor (hyper's
# own per-request allocations), when `static` ran.
floor=${APR[static]:-}
echo
echo "| mode | requests/s | p99 latency | allocations/request | body-path allocations/request (minus static) | pool checkouts | hit rate |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
    body="-"
    if [[ -n $floor && $floor != n/a && ${APR[$mode]} != n/a ]]; then
        body=$(awk -v a="${APR[$mode]}" -v f="$floor" 'BEGIN {printf "%.3f", a - f}')
    fi
    echo "| $mode | ${RPS[$mode]} | ${P99[$mode]} | ${APR[$mode]} | $body | ${CHECKOUTS[$mode]} | ${HIT[$mode]} |"
done
