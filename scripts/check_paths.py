#!/usr/bin/env python3
"""Every repository path named in the code's comments and the docs exists.

Scans the tracked text files for paths that start at one of the repository's top-level
folders (`src/...`, `cli/...`, `docs/...`, ...) and reports those that name nothing.
Generated folders (tests/oracle, target) and paths with wildcards or placeholders are
skipped. Exit status 1 when any path is stale, with one line per place.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOPS = ["src", "cli", "tests", "scripts", "docs", "benches", "examples", "fuzz", "weights", "assets", ".ci"]
GENERATED = ("tests/oracle", "target", "fuzz/target", "fuzz/corpus", "fuzz/artifacts", "cli/target")
SUFFIXES = {".rs", ".md", ".py", ".toml", ".sh", ".yml", ".yaml", ".txt"}
PATH = re.compile(r"(?<![\w/.$-])((?:%s)/[\w./-]*\w)" % "|".join(re.escape(t) for t in TOPS))


def candidates(text):
    for m in PATH.finditer(text):
        path = m.group(1)
        after = text[m.end(): m.end() + 1]
        if after in "*{<" and after != "":
            continue  # a pattern or placeholder: src/trunk/{alex,vgg}.rs, docs/*.md
        yield path, text.count("\n", 0, m.start()) + 1


def main():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    stale = []
    for name in files:
        p = ROOT / name
        if not (p.suffix in SUFFIXES or p.name in ("Makefile", "run")) or not p.is_file():
            continue
        text = p.read_text(errors="replace")
        for path, line in candidates(text):
            if path.startswith(GENERATED):
                continue
            # A path may be named from the repository root, or from its own crate's root
            # (cli/) or folder.
            if any((base / path).exists() for base in (ROOT, p.parent, ROOT / "cli")):
                continue
            stale.append(f"{name}:{line}: {path} does not exist")
    for s in stale:
        print(s)
    if stale:
        print(f"{len(stale)} stale repository paths (fix the text or the path)", file=sys.stderr)
        return 1
    print(f"repository paths in {len(files)} files: all exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
