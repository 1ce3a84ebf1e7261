#!/usr/bin/env bash
# valgrind memcheck over the examples: `quickstart` (pool-core: buffers
# crossing threads) and a short `soak` (pool-tokio: pooled Framed echo on
# loopback, aborted tasks, frozen clones, blocking-thread churn). Fails on
# any memory error or on any block "definitely" or "indirectly" lost.
# "Still reachable" blocks (tokio's and std's process-wide state, the
# default pool) are expected and not counted.
#
# Usage: scripts/valgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
    if command -v apt-get >/dev/null; then
        # Hosted CI runners are not root but have passwordless sudo.
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq valgrind >/dev/null
    else
        echo "valgrind.sh: valgrind is not installed" >&2
        exit 1
    fi
fi
# quickstart is a package of its own (pool-core alone); soak is in `examples`.
cargo build --release -p quickstart --example quickstart
cargo build --release -p examples --example soak
memcheck() {
    echo "=== valgrind: $*"
    valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --error-exitcode=1 --quiet "$@"
}
memcheck target/release/examples/quickstart
memcheck target/release/examples/soak --seconds 2 --concurrent 4
echo "valgrind: no memory errors, nothing definitely or indirectly lost"
