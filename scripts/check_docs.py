#!/usr/bin/env python3
"""Checks that the files, tests and items the docs name exist.

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

for p in sorted(set(problems)):
    print(p)
if problems:
    print(f"{len(set(problems))} names in the docs do not exist; fix the docs or the code")
    sys.exit(1)
print("every file, test and item the docs name exists")
