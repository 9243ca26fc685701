#!/usr/bin/env python3
"""Source files over a length limit, counted the way issue 16 counts them.

A file's length is its lines of code outside `#[cfg(test)]` items: lines
that are not blank and not comments (`//`, `///`, `//!`). Integration
tests (`tests/`), examples, benches and fuzz targets are not counted:
they are test code as a whole.

    scripts/file-lengths.py [--limit N] [--max-files M]

Prints each file over N (default 600) lines of code, longest first, and
exits non-zero if more than M (default: no check) are over. A long file
says why in its module doc.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_lines(text):
    lines = text.split("\n")
    out, i, n = [], 0, len(lines)
    while i < n:
        if lines[i].strip().startswith("#[cfg(test)]"):
            j = i + 1
            while j < n and lines[j].strip().startswith("#["):
                j += 1
            depth, started = 0, False
            while j < n:
                depth += lines[j].count("{") - lines[j].count("}")
                started = started or "{" in lines[j]
                j += 1
                if started and depth <= 0:
                    break
                if not started and lines[j - 1].rstrip().endswith(";"):
                    break
            i = j
            continue
        out.append(lines[i])
        i += 1
    return sum(1 for l in out if l.strip() and not l.strip().startswith("//"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--max-files", type=int, default=None)
    args = ap.parse_args()
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "*.rs"],
                           capture_output=True, text=True, check=True).stdout.split()
    rows = []
    for f in files:
        parts = f.split("/")
        if any(p in ("tests", "examples", "benches", "fuzz_targets") for p in parts) or not os.path.exists(os.path.join(ROOT, f)):
            continue
        with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
            n = code_lines(fh.read())
        if n > args.limit:
            rows.append((n, f))
    rows.sort(reverse=True)
    for n, f in rows:
        print(f"{n:6d}  {f}")
    print(f"{len(rows)} source files over {args.limit} lines of code (outside #[cfg(test)])")
    if args.max_files is not None and len(rows) > args.max_files:
        sys.exit(1)


if __name__ == "__main__":
    main()
