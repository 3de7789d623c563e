#!/usr/bin/env python3
"""Rewrites the test vectors in docs/FORMAT.md from the code, after a deliberate format
change: runs the vectors test in print mode and replaces each `<!-- vector: NAME -->`
block with the computed value. Review the diff before committing it.

Usage: python3 scripts/update-vectors.py
"""
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
run = subprocess.run(
    ["cargo", "test", "-p", "fapiao-core", "--test", "format_vectors", "--", "--nocapture",
     "format_md_vectors_match_the_code"],
    cwd=root, env={**os.environ, "FAPIAO_PRINT_VECTORS": "1"}, capture_output=True, text=True)
block = re.compile(r"<!-- vector: (\S+) -->\n```text\n(.*?)```\n", re.S)
computed = {m.group(1): m.group(2) for m in block.finditer(run.stdout)}
if not computed:
    sys.exit("the test printed no vectors:\n" + run.stderr[-2000:])
path = os.path.join(root, "docs", "FORMAT.md")
text = open(path).read()
missing = [n for n in computed if f"<!-- vector: {n} -->" not in text]
if missing:
    sys.exit(f"docs/FORMAT.md has no place for {missing}: add the markers first")
text = block.sub(lambda m: f"<!-- vector: {m.group(1)} -->\n```text\n{computed.get(m.group(1), m.group(2))}```\n", text)
open(path, "w").write(text)
print(f"updated {len(computed)} vectors in docs/FORMAT.md")
