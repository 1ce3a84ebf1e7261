#!/usr/bin/env python3
"""Condenses a `compare` CSV into one markdown table per workload point:
one row per contender, ns/op under each allocator build, and the ratio
to pool-core under the same build (above 1: pool-core is faster).

    python3 benches/results/summarize.py benches/results/FILE.csv
"""
import csv
import sys
from collections import OrderedDict

ALLOCS = ["system", "jemalloc", "mimalloc"]
NAMES = {
    "w1": "W1 (checkout, write 64 B + last byte, return; ns/op)",
    "w1f": "W1f (checkout, fill, return; ns/op)",
    "w2": "W2 (T threads, 4 KiB, per-thread ns/op)",
    "w3": "W3 (T producers -> T consumers, 4 KiB; wall ns per message; RSS growth MiB)",
    "w4": "W4 (tokio, T workers, 4 tasks each, 4 KiB across yield_now; wall ns per op)",
    "w5": "W5 (2,000 x 64 KiB burst; ns per buffer of the second burst; RSS MiB)",
}


def human(n):
    n = int(n)
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def extra(row, key):
    for kv in row["extra"].split(";"):
        if kv.startswith(key + "="):
            return float(kv.split("=", 1)[1])
    return None


def main(path):
    rows = list(csv.DictReader(open(path)))
    allocs = [a for a in ALLOCS if any(r["allocator"] == a for r in rows)]
    points = OrderedDict()
    for r in rows:
        points.setdefault((r["workload"], int(r["size"]), int(r["threads"])), []).append(r)
    for (w, size, threads), rs in points.items():
        print(f"\n#### {NAMES.get(w, w)}: {human(size)}, {threads} thread(s)\n")
        cols = [f"{a} ns/op (ratio)" for a in allocs]
        if w == "w3":
            cols += [f"{a} RSS growth" for a in allocs]
        if w == "w5":
            cols += [f"{a} RSS after idle / after trim" for a in allocs]
        print("| contender | " + " | ".join(cols) + " |")
        print("|---|" + "---:|" * len(cols))
        by = OrderedDict()
        for r in rs:
            by.setdefault(r["contender"], {})[r["allocator"]] = r
        for c, per in by.items():
            cells = []
            for a in allocs:
                r = per.get(a)
                if r is None:
                    cells.append("-")
                    continue
                ratio = r["ratio_to_pool_core"]
                ns = float(r["ns_per_op"])
                cells.append(f"{ns:.1f} ({float(ratio):.2f})" if ratio else f"{ns:.1f}")
            if w == "w3":
                for a in allocs:
                    g = per.get(a) and extra(per[a], "rss_growth_mib")
                    cells.append("-" if g is None else f"{g:.1f}")
            if w == "w5":
                for a in allocs:
                    r = per.get(a)
                    if r is None:
                        cells.append("-")
                        continue
                    i, t = extra(r, "rss_idle_mib"), extra(r, "rss_trim_mib")
                    m = extra(r, "rss_malloc_trim_mib")
                    cell = f"{i:.0f} / {t:.0f}"
                    if m is not None:
                        cell += f" ({m:.0f} after malloc_trim)"
                    cells.append(cell)
            print(f"| {c} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
