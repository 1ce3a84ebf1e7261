#!/usr/bin/env python3
"""Checks that the files, tests, items and functions the docs name exist.

The code map in ARCHITECTURE.md, the test tables in RELIABILITY.md and the
README name files (`engine/mod.rs`), tests (`budget.rs`
`split_parts_keep_their_buffers_charge_until_they_drop`) and items
(`Engine::take`, `BudgetStats::held_shared`). A rename that forgets the docs
fails here. Names the project does not define (std's, tokio's) are skipped:
an item is checked only when its type is defined in pool-core or pool-tokio.

Usage: scripts/check_docs.py   (from anywhere in the checkout)
"""
import os
import re
import subprocess
import sys

ROOT = subprocess.run(
    ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
).stdout.strip()
os.chdir(ROOT)

DOCS = ["ARCHITECTURE.md", "README.md", "RELIABILITY.md", "CHANGELOG.md", "benches/RESULTS.md"]
FILES = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
# Files a session adds but has not committed yet count too.
FILES += subprocess.run(
    ["git", "ls-files", "--others", "--exclude-standard"], capture_output=True, text=True, check=True
).stdout.split()
SOURCES = [f for f in FILES if f.endswith(".rs") and f.startswith(("pool-core/", "pool-tokio/"))]
TEXT = {f: open(f, encoding="utf-8").read() for f in SOURCES if os.path.exists(f)}
ALL_SOURCE = "\n".join(TEXT.values())

problems = []


def files_ending(name):
    return [f for f in FILES if f == name or f.endswith("/" + name)]


def defined_type(name):
    return re.search(r"\b(struct|enum|trait|type|union)\s+" + re.escape(name) + r"\b", ALL_SOURCE)


def has_member(type_name, member):
    # A method, an associated constant, a field or a variant.
    pat = r"\b(fn|const)\s+" + re.escape(member) + r"\b|\b" + re.escape(member) + r"\s*[:({,]"
    return re.search(pat, ALL_SOURCE) is not None


for doc in DOCS:
    if not os.path.exists(doc):
        continue
    text = open(doc, encoding="utf-8").read()
    for token in set(re.findall(r"`([A-Za-z0-9_./-]+\.(?:rs|md|sh|toml|yml|csv|txt))`", text)):
        if token.startswith("-") or "*" in token:
            continue
        if not files_ending(token):
            problems.append(f"{doc}: names `{token}`, which no file in the checkout is")
    # A test file followed by a test name: `file.rs` `test_name`.
    for file, test in re.findall(r"`([A-Za-z0-9_/.-]+\.rs)`\s+`([a-z0-9_]+)`", text):
        matches = [f for f in files_ending(file) if f in TEXT or os.path.exists(f)]
        if not matches:
            continue
        if not any(re.search(r"\bfn\s+" + test + r"\b", open(f, encoding="utf-8").read()) for f in matches):
            problems.append(f"{doc}: names test `{test}` in `{file}`, which has no such function")
    if doc == "benches/RESULTS.md":
        continue  # names the peers' APIs (object-pool's `Pool::pull`)
    for type_name, member in set(re.findall(r"`([A-Z][A-Za-z0-9]*)::([a-z_][a-z0-9_]*)", text)):
        if defined_type(type_name) and not has_member(type_name, member):
            problems.append(f"{doc}: names `{type_name}::{member}`, which is not defined")

# Bare names and module paths: `keeps_cache`, `runtime::keeps_cache`,
# `pool_tokio::checkout`. A bare snake_case name must be defined somewhere in
# the workspace's sources (a function, field, constant, static, module or
# macro, or a string such as a span's name), be the stem of a file or folder
# (an example, a test, a bench), or be one of the names other crates define,
# listed in EXTERNAL. A `module::name` path whose first segment is a module of
# pool-core or pool-tokio (or one of the crates) must name something defined
# in that module's files.
BARE_DOCS = ["ARCHITECTURE.md", "README.md", "RELIABILITY.md"]
EXTERNAL = {
    "unsafe",  # the keyword
    "std", "thread_local",  # crates: std, and the `thread_local` dependency
    "assume_init",  # std's `MaybeUninit::assume_init`
    "split", "split_off", "split_to", "try_reclaim",  # bytes' `BytesMut` methods
    "spawn_blocking", "timeout",  # tokio's
    "nproc",  # a shell command
    "opool",  # a peer crate
}
RS_FILES = [f for f in FILES if f.endswith(".rs") and os.path.exists(f)]
WORKSPACE_SOURCE = "\n".join(open(f, encoding="utf-8").read() for f in RS_FILES)
STEMS = set()
for f in FILES:
    parts = f.split("/")
    STEMS.update(parts[:-1])
    STEMS.add(parts[-1].split(".")[0])


def defines(name, text):
    kinds = r"\b(fn|const|static|mod|struct|enum|trait|type|macro_rules!)\s+"
    return (
        re.search(kinds + re.escape(name) + r"\b", text) is not None
        or re.search(r"\b" + re.escape(name) + r"\s*:[^:]", text) is not None
        or '"' + name + '"' in text
    )


def module_files(module):
    if module in ("pool_core", "pool_tokio"):
        crate = module.replace("_", "-") + "/src/"
        return [f for f in SOURCES if f.startswith(crate)]
    return [
        f
        for f in SOURCES
        if re.match(r"pool-(core|tokio)/src/(.*/)?" + re.escape(module) + r"(\.rs|/)", f)
    ]


for doc in BARE_DOCS:
    if not os.path.exists(doc):
        continue
    text = open(doc, encoding="utf-8").read()
    for name in set(re.findall(r"`([a-z_][a-z0-9_]*)(?:\(\))?`", text)):
        if name in EXTERNAL or name in STEMS or defines(name, WORKSPACE_SOURCE):
            continue
        problems.append(f"{doc}: names `{name}`, which nothing in the workspace defines")
    for module, name in set(re.findall(r"`([a-z_][a-z0-9_]*)::([a-z_][a-z0-9_]*)(?:\(\))?`", text)):
        files = module_files(module)
        if not files:
            continue  # another crate's path (`tokio::spawn`)
        if not any(defines(name, TEXT[f]) for f in files if f in TEXT):
            problems.append(f"{doc}: names `{module}::{name}`, which `{module}` does not define")

# Documents named in passing (`NOTES.md`, `STYLE.md`) must be in the checkout.
for doc in DOCS:
    if not os.path.exists(doc):
        continue
    text = open(doc, encoding="utf-8").read()
    for name in set(re.findall(r"\b([A-Z][A-Z0-9_]*\.md)\b", text)):
        if not files_ending(name):
            problems.append(f"{doc}: mentions {name}, which is not in the checkout")

# The tests that scripts/repeat.sh and scripts/tsan.sh run (their `*_TESTS`
# lists) must all be named in the RELIABILITY.md item that describes each
# script, so that its list cannot drift from the script's.
if os.path.exists("RELIABILITY.md"):
    reliability = open("RELIABILITY.md", encoding="utf-8").read()
    for script in ["scripts/repeat.sh", "scripts/tsan.sh"]:
        listed = []
        for _, body in re.findall(r"^([A-Z_]+_TESTS)=\(\n(.*?)^\)", open(script).read(), re.M | re.S):
            listed += [w for w in re.sub(r"#.*", "", body).split()]
        item = re.search(r"^- `" + re.escape(script) + r"[^\n]*(\n  [^\n]*)*", reliability, re.M)
        if item is None:
            problems.append(f"RELIABILITY.md: no list item describes `{script}`")
            continue
        for test in listed:
            if f"`{test}`" not in item.group(0):
                problems.append(f"RELIABILITY.md: the item on `{script}` does not name `{test}`, which it runs")

for p in sorted(set(problems)):
    print(p)
if problems:
    print(f"{len(set(problems))} names in the docs do not exist; fix the docs or the code")
    sys.exit(1)
print("every file, test and item the docs name exists")
