#!/usr/bin/env python3
"""Checks the two library crates' structure: no import circle between their
source files, and no source file over 400 lines of code.

An import is a path into another file of the same crate: `use crate::a::B`,
`use super::{c, D}`, or a `crate::a::b(...)` path in the code. A path that
stops at a module's item (`super::Engine`) points at the file that defines
the module (`engine/mod.rs`). Declaring a child (`mod cache;`) and the crate
root (`lib.rs`, which re-exports everything) are not imports.

Lines of code leave out blank lines, comments, doc comments and
`#[cfg(test)]` modules.

Usage: scripts/check_structure.py   (from anywhere in the checkout)
"""
import os
import re
import subprocess
import sys

ROOT = subprocess.run(
    ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
).stdout.strip()
os.chdir(ROOT)

CRATES = ["pool-core", "pool-tokio"]
MAX_CODE_LINES = 400


def strip_comments(text):
    """The text without comments, string literals kept as they are."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def library_code(text):
    """The non-blank lines of code outside comments and `#[cfg(test)]` modules."""
    kept, depth, skip_at, pending = [], 0, None, False
    for raw in strip_comments(text).split("\n"):
        line = raw.strip()
        opens, closes = raw.count("{"), raw.count("}")
        if skip_at is not None:
            depth += opens - closes
            if depth <= skip_at:
                skip_at = None
            continue
        if re.match(r"#\[cfg\((all\()?test\b", line):
            pending = True
            continue
        if pending and re.match(r"(pub(\([^)]*\))? )?mod \w+", line):
            pending = False
            if "{" in line:
                skip_at = depth
                depth += opens - closes
            continue
        pending = False
        depth += opens - closes
        if line:
            kept.append(line)
    return kept


def module_path(src, path):
    """`engine/cache.rs` -> ('engine', 'cache'); `engine/mod.rs` -> ('engine',)."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def use_paths(text):
    """Every path a `use` declaration names, with the braces expanded."""
    paths = []
    for decl in re.findall(r"\buse\s+([^;]+);", text):
        decl = re.sub(r"\s+", "", decl)
        stack = [("", decl)]
        while stack:
            prefix, rest = stack.pop()
            m = re.match(r"^([\w:]*?)\{(.*)\}$", rest)
            if not m:
                paths.append(prefix + rest.split(" as ")[0])
                continue
            head, body = m.group(1), m.group(2)
            depth, part = 0, ""
            for ch in body + ",":
                if ch == "," and depth == 0:
                    if part:
                        stack.append((prefix + head, part))
                    part = ""
                    continue
                depth += ch == "{"
                depth -= ch == "}"
                part += ch
    return paths


def resolve(here, path, modules):
    """The module a `crate::`/`super::`/`self::` path lands in, or None."""
    parts = [p for p in path.split("::") if p]
    if not parts:
        return None
    if parts[0] == "crate":
        base, parts = (), parts[1:]
    elif parts[0] in ("super", "self"):
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    else:
        return None
    best = base
    for i in range(len(parts)):
        candidate = base + tuple(parts[: i + 1])
        if candidate in modules:
            best = candidate
        else:
            break
    return best


problems = []
for crate in CRATES:
    src = os.path.join(crate, "src")
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_path(src, path)] = path
    edges = {m: set() for m in files}
    for module, path in files.items():
        code = "\n".join(library_code(open(path, encoding="utf-8").read()))
        lines = code.count("\n") + 1 if code else 0
        if lines > MAX_CODE_LINES:
            problems.append(f"{path}: {lines} lines of code (at most {MAX_CODE_LINES})")
        if module == ():
            continue
        paths = use_paths(code)
        paths += re.findall(r"\b((?:crate|super)(?:::\w+)+)", code)
        for p in paths:
            target = resolve(module, p, files)
            if target is not None and target != module and target != ():
                edges[module].add(target)

    # Tarjan's strongly connected components: each one of more than one
    # file is a circle.
    index, low, on, stack, order, circles = {}, {}, set(), [], [0], []

    def visit(v):
        index[v] = low[v] = order[0]
        order[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(comp)

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in circles:
        names = sorted(files[m] for m in comp)
        ties = [
            f"{files[a]} -> {files[b]}"
            for a in sorted(comp)
            for b in sorted(edges[a])
            if b in comp
        ]
        problems.append("import circle: " + ", ".join(names) + "\n    " + "\n    ".join(ties))

if problems:
    print("structure check failed:")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print("no import circle, no source file over", MAX_CODE_LINES, "lines of code")
