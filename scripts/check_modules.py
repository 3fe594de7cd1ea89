#!/usr/bin/env python3
"""Import cycles between a crate's first-level modules.

For `src/` (the library) and `cli/src/` (the command line), every `crate::name` path in
code (a `use` line or an inline path; comments and doc comments are skipped) and every
`super::name` that leaves a first-level module's folder is an edge from the module the file
belongs to (`src/model/builder.rs` belongs to `model`) to `name`. Strongly connected
components of more than one module are cycles: printed, with one file and line per edge,
and the exit status is 1. The crate root (lib.rs, main.rs) is left out: it declares every
module and re-exports from them.

Usage: scripts/check_modules.py [ROOT]   (ROOT: the repository, default: this script's parent)
"""

import re
import sys
from pathlib import Path

CRATES = ["src", "cli/src"]
ROOT_FILES = {"lib.rs", "main.rs"}
PATH_RE = re.compile(r"\b(crate|super)((?:::\w+)+|::\{)")


def strip_comments(text):
    """The code of a Rust file with line comments and block comments blanked (lines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_parts(crate_dir, path):
    """The module path of a file: src/model/builder.rs -> ['model', 'builder']."""
    rel = path.relative_to(crate_dir).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def use_groups(code, start):
    """The first-level names under a `crate::{a, b::c}` group that starts at `start` ('{')."""
    depth, j, names, token, top = 0, start, [], "", True
    while j < len(code):
        ch = code[j]
        if ch == "{":
            depth += 1
            if depth == 1:
                token, top = "", True
        elif ch == "}":
            depth -= 1
            if depth == 0:
                if token.strip() and top:
                    names.append(token.strip())
                break
        elif depth == 1:
            if ch == ",":
                if token.strip() and top:
                    names.append(token.strip())
                token, top = "", True
            elif ch == ":" or ch == " " and token.strip():
                if token.strip():
                    names.append(token.strip()) if top else None
                top, token = False, ""
            elif top:
                token += ch
        j += 1
    return [re.match(r"\w+", n).group(0) for n in names if re.match(r"\w+", n)]


def edges_of(crate_dir):
    modules = {p.stem for p in crate_dir.glob("*.rs") if p.name not in ROOT_FILES}
    modules |= {p.name for p in crate_dir.iterdir() if p.is_dir() and any(p.rglob("*.rs"))}
    edges = {}
    for path in sorted(crate_dir.rglob("*.rs")):
        if path.relative_to(crate_dir).as_posix() in ROOT_FILES:
            continue
        parts = module_parts(crate_dir, path)
        owner = parts[0]
        code = strip_comments(path.read_text())
        for m in PATH_RE.finditer(code):
            kind, rest = m.group(1), m.group(2)
            line = code.count("\n", 0, m.start()) + 1
            if rest == "::{":
                names = use_groups(code, m.end() - 1)
            else:
                names = [rest.split("::")[1]]
            if kind == "super":
                # `super::x` in a/b/c.rs is a::b::x; only a path that reaches the
                # crate root (a first-level file's `super::`) names another module.
                supers = 1 + len(re.findall(r"\bsuper\b", rest))
                # a child file (foo/bar.rs) under `mod tests` is not modelled: inline
                # test modules' `super::` stays in their file.
                depth = len(parts) - supers
                if depth > 0:
                    continue
                names = [n for n in rest.split("::")[1:] if n != "super"][:1] if rest != "::{" else names
            for name in names:
                if name in modules and name != owner:
                    edges.setdefault(owner, {}).setdefault(name, f"{path}:{line}")
    return modules, edges


def cycles(modules, edges):
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(comp, edges):
    """One shortest cycle inside a strongly connected component, as (from, to, where)."""
    members = set(comp)
    best = None
    for start in comp:
        # Breadth-first from `start` back to itself.
        prev, queue, found = {start: None}, [start], None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w in sorted(edges.get(v, {})):
                    if w not in members:
                        continue
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            queue = nxt
        if found is None:
            continue
        path = [found]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        path.append(start)
        if best is None or len(path) < len(best):
            best = path
    return [(a, b, edges[a][b]) for a, b in zip(best, best[1:])] if best else []


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    failed = False
    for crate in CRATES:
        crate_dir = root / crate
        if not crate_dir.is_dir():
            continue
        modules, edges = edges_of(crate_dir)
        for comp in cycles(modules, edges):
            failed = True
            print(f"{crate}: import cycle between {', '.join(comp)}")
            members = set(comp)
            for a, b, where in shortest_cycle(comp, edges):
                print(f"  {a} -> {b}  ({Path(where).relative_to(root)})")
            inside = sum(1 for a in comp for b in edges.get(a, {}) if b in members)
            print(f"  ({inside} imports between these modules in all)")
    if failed:
        print("check_modules: cut the cycles above (a module may only use what is below it)")
        return 1
    print("check_modules: no import cycles in " + ", ".join(CRATES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
