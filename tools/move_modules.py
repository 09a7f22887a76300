#!/usr/bin/env python3
"""Moves TypeScript modules and rewrites every relative import that points at them
(and the moved files' own relative imports). Usage: move_modules.py OLD=NEW ..."""
import os, re, subprocess, sys
root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
os.chdir(root)
moves = {}
for arg in sys.argv[1:]:
    a, b = arg.split("=")
    moves[os.path.normpath(a)] = os.path.normpath(b)
files = [f for f in subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard"], text=True).split("\n")
         if f.endswith((".ts", ".js", ".tsx")) and os.path.exists(f)]
IMP = re.compile(r'''((?:from|import)\s*\(?\s*|new URL\(\s*)(["'])(\.{1,2}/[^"']+)\2''')
def rewrite(path_old, path_new, text):
    def sub(m):
        spec = m.group(3)
        target = os.path.normpath(os.path.join(os.path.dirname(path_old), spec))
        target_new = moves.get(target, target)
        rel = os.path.relpath(target_new, os.path.dirname(path_new))
        if not rel.startswith("."):
            rel = "./" + rel
        if spec.endswith("/") and not rel.endswith("/"):
            rel += "/"
        return f"{m.group(1)}{m.group(2)}{rel}{m.group(2)}"
    return IMP.sub(sub, text)
for f in files:
    nf = moves.get(os.path.normpath(f), f)
    text = open(f).read()
    new = rewrite(f, nf, text)
    if new != text:
        open(f, "w").write(new)
for a, b in moves.items():
    os.makedirs(os.path.dirname(b), exist_ok=True)
    subprocess.check_call(["git", "mv", a, b])
