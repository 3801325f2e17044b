#!/usr/bin/env python3
"""Check that backstop-core's top-level modules import one way.

The modules follow a record's path, and an import may only point down this order
(low to high; a module may use any module before it, never one after it):

    protocol     the Sentry shapes; imports nothing else of core
    metrics      route metrics from every request: plain counts and histograms
    sink         the `Sink` trait and what sinks receive (`Record`, the summary)
    options      the configuration: `Options`, the validated `Settings`, and the
                 plain values they hold (detector thresholds, the scrubbing rules),
                 so configuring never reaches into the machinery it configures
    capture      what a capture carries: panic, backtrace, fingerprint, trace
    http         the request's facts (copied once at start, built into Sentry's
                 request context on the worker), client IP, bodies, request ids,
                 transaction names, which responses are errors or get a page
    scope        the per-request scope that handler code reaches
    performance  the tracing layer, spans, db, outgoing calls, SQL, the detectors
    pipeline     queue, hand-off, worker, processing, scrubbing, sinks; and in
                 `pipeline::reuse`, the allocator-aware machinery behind one small
                 interface (it recycles what the pipeline carries, so it sits there)
    client       starts the pipeline and the panic hook; what captures go to
    exchange     the request lifecycle both adapters share (start, verdict, panic,
                 finish) and their shared configuration, on top of all of it
    test         test capture (feature `test`), a user of everything

`lib.rs` is the facade above them all: a module may name a root re-export (it is
resolved to the module that defines it), never what lib.rs defines itself.

Why this order: `performance` sits above `scope` because the tracing layer, the
database and HTTP-call spans and the cache spans all record into the current
`RequestScope` (its sampling decision, its span list, its breadcrumbs); turning that
round would rewrite every recorder. So the scope may not name what the recorders
define, and the span *records* it holds belong below it. `pipeline` sits above both
because it processes what a finished scope hands over (assembling spans, running the
detectors); `client` is above the pipeline because it starts it. HTTP is in two
layers: the facts and rules (`http`) sit below the scope, which holds a request's
facts, and the pipeline, which copies them; the lifecycle (`exchange`) drives a scope
and a client, so it comes last.

What is read: every .rs file under crates/backstop-core/src, without comments (doc
comments included), string literals and `#[cfg(test)]` items (or `#[cfg(test)]`
module files). Paths are `crate::..`, `$crate::..`, and `super::..` that climbs out
of a top-level module. `crate::Name` is resolved through lib.rs's `use` lines to its
module.

Prints each back-edge (an import from a lower module to a higher one), with the
places it comes from, and each cycle among the top-level modules. Exits 1 when there
is a back-edge. Python 3, no dependencies.

    python3 scripts/core-layers.py [--verbose]
"""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict

ORDER = [
    "protocol",
    "metrics",
    "sink",
    "options",
    "capture",
    "http",
    "scope",
    "performance",
    "pipeline",
    "client",
    "exchange",
    "test",
]
ROOT = "lib"  # crate root: the facade, above everything

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "crates", "backstop-core", "src")

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text: str) -> str:
    """Blank out comments, string and char literals, keeping newlines (line numbers)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and not re.match(r"[A-Za-z0-9_]", text[i - 1 : i]):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(text: str, i: int) -> int:
    """The end of the item starting at `i`: its `;` or its first brace block's end."""
    depth = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "{":
            # The item's body: skip to the matching brace.
            d, j = 1, i + 1
            while j < n and d:
                if text[j] == "{":
                    d += 1
                elif text[j] == "}":
                    d -= 1
                j += 1
            if depth == 0:
                return j
            i = j
            continue
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return n


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def drop_cfg_test(text: str) -> tuple[str, list[str]]:
    """Blank out `#[cfg(test)]` items; return the text and the test-only `mod x;` names."""
    test_mods = []
    while True:
        m = CFG_TEST.search(text)
        if not m:
            return text, test_mods
        i = m.end()
        # Further attributes on the same item.
        while True:
            a = re.match(r"\s*#\s*\[", text[i:])
            if not a:
                break
            j = i + a.end()
            d = 1
            while d:
                d += {"[": 1, "]": -1}.get(text[j], 0)
                j += 1
            i = j
        end = item_end(text, i)
        mod = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text[i:end])
        if mod:
            test_mods.append(mod.group(1))
        text = text[: m.start()] + re.sub(r"[^\n]", " ", text[m.start() : end]) + text[end:]


def expand(path: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`] (whitespace removed)."""
    path = re.sub(r"\s+", "", path)
    brace = path.find("{")
    if brace < 0:
        return [path]
    prefix = path[:brace]
    inner = path[brace + 1 : path.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p:
            out.extend(expand(prefix + p))
    return out


# A path after `crate::`, `$crate::` or `super::`: segments, with an optional brace group.
PATH = re.compile(
    r"(?<![A-Za-z0-9_])(\$?crate|(?:super\s*::\s*)+)\s*::\s*((?:" + IDENT + r"\s*::\s*)*(?:\{|" + IDENT + r"))"
)


def paths_in(text: str):
    """Yield (line, [segments]) for every crate-relative path in `text`."""
    for m in PATH.finditer(text):
        head = m.group(1)
        start = m.start(2)
        body = m.group(2)
        if body.endswith("{"):
            # Take the whole brace group.
            i = m.end(2)
            d = 1
            while d and i < len(text):
                d += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            body = text[start:i]
        line = text.count("\n", 0, m.start()) + 1
        supers = 0 if "crate" in head else head.count("super")
        for p in expand(body):
            segs = [s for s in p.split("::") if s]
            yield line, supers, segs


def module_path(rel: str) -> list[str]:
    """`performance/spans.rs` -> [performance, spans]; `http/mod.rs` -> [http]; lib.rs -> []."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def root_names(lib: str) -> dict[str, list[str]]:
    """Names reachable as `crate::Name` through lib.rs's `use` lines -> their path."""
    names: dict[str, list[str]] = {}
    # Drop the `adapter` module body and functions; read only top-level `use` items.
    for m in re.finditer(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", lib):
        for p in expand(m.group(1)):
            p = re.sub(r"^crate::", "", p)
            segs = p.split("::")
            last = segs[-1]
            if " as " in last:
                segs[-1], last = (x.strip() for x in last.split(" as "))
            names[last] = segs
    return names


def main() -> int:
    verbose = "--verbose" in sys.argv
    files = {}
    for dirpath, _, filenames in os.walk(SRC):
        for f in filenames:
            if f.endswith(".rs"):
                full = os.path.join(dirpath, f)
                with open(full, encoding="utf-8") as fh:
                    files[os.path.relpath(full, SRC)] = fh.read()

    lib = strip(files["lib.rs"])
    lib, _ = drop_cfg_test(lib)
    reexports = root_names(lib)
    # `adapter` is a namespace in lib.rs: `pub use crate::http::*` and named items.
    adapter_named = {}
    am = re.search(r"pub\s+mod\s+adapter\s*\{([^}]*)\}", lib)
    adapter_glob = []
    if am:
        for u in re.finditer(r"use\s+([^;]+);", am.group(1)):
            for p in expand(u.group(1)):
                segs = re.sub(r"^crate::", "", p).split("::")
                if segs[-1] == "*":
                    adapter_glob.append(segs[0])
                else:
                    adapter_named[segs[-1]] = segs

    def resolve(segs: list[str], depth: int = 0) -> str:
        """The top-level module that `crate::segs..` lives in."""
        first = segs[0]
        if first in ORDER:
            return first
        if first == "adapter" and len(segs) > 1:
            if segs[1] in adapter_named:
                return resolve(adapter_named[segs[1]], depth + 1)
            return adapter_glob[0] if adapter_glob else ROOT
        if first in reexports and depth < 8:
            return resolve(reexports[first], depth + 1)
        return ROOT

    # Which files are test-only (`#[cfg(test)] mod tests;`).
    cleaned = {}
    test_only = set()
    for rel, text in files.items():
        t, mods = drop_cfg_test(strip(text))
        cleaned[rel] = t
        base = module_path(rel)
        for name in mods:
            d = os.path.join(*base) if base else ""
            test_only.add(os.path.join(d, name + ".rs"))
            test_only.add(os.path.join(d, name, "mod.rs"))

    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    unknown = []
    for rel in sorted(cleaned):
        if rel == "lib.rs" or rel in test_only:
            continue
        mp = module_path(rel)
        here = mp[0]
        if here not in ORDER:
            unknown.append(f"{rel}: top-level module {here!r} is not in ORDER")
            continue
        # `mod.rs` and top-level files are their module; `x.rs` in a folder is one below.
        for line, supers, segs in paths_in(cleaned[rel]):
            if supers:
                if supers < len(mp):
                    continue  # stays inside this top-level module
                segs = segs  # climbed to the crate root
            if not segs or segs[0] in ("self", "super"):
                continue
            target = resolve(segs)
            if target != here:
                edges[(here, target)].append(f"{rel}:{line} crate::{'::'.join(segs)}")

    rank = {m: i for i, m in enumerate(ORDER)}
    rank[ROOT] = len(ORDER)
    back = sorted(((a, b) for (a, b) in edges if rank[b] > rank[a]), key=lambda e: (rank[e[0]], rank[e[1]]))

    for u in unknown:
        print(u)
    print("order (low -> high): " + " < ".join(ORDER) + f" < {ROOT}")
    if verbose:
        print("\nedges:")
        for (a, b) in sorted(edges, key=lambda e: (rank[e[0]], rank[e[1]])):
            print(f"  {a} -> {b} ({len(edges[(a, b)])})")

    # Cycles: strongly connected components with more than one module.
    graph = defaultdict(set)
    for (a, b) in edges:
        graph[a].add(b)
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                sccs.append(sorted(comp, key=lambda m: rank[m]))

    for v in sorted(graph, key=lambda m: rank[m]):
        if v not in index:
            visit(v)

    if sccs:
        print("\ncycles (modules that reach each other):")
        for comp in sccs:
            print("  {" + ", ".join(comp) + "}")
    if back:
        print(f"\n{len(back)} back-edge(s), low -> high:")
        for (a, b) in back:
            sites = edges[(a, b)]
            print(f"  {a} -> {b} ({len(sites)})")
            for s in sites:
                print(f"      {s}")
        return 1
    print("no back-edges")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
