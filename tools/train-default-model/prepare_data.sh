#!/usr/bin/env bash
# Prepares the training text for models/kjv-llama: the King James Bible (public
# domain) from Debian's packages, one verse per line, chapters separated by a
# blank line, split into train/validation by chapter.
#
#   tools/train-default-model/prepare_data.sh [OUT_DIR]   (default: data/ beside this script)
#
# Needs: apt-get (Debian/Ubuntu; run `apt-get update` once first), dpkg-deb,
# python3 (standard library only), an x86-64 machine (the packaged `bible`
# program decodes the compressed text). Writes OUT_DIR/{train.txt,val.txt,SOURCE.json}.
# The text is reproducible from the pinned package versions; SOURCE.json records
# the packages, versions, .deb SHA-256 sums and the SHA-256 of each output file.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/data}"
version="${KJV_DEB_VERSION:-4.38}"   # Debian 12 (bookworm) ships 4.38
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
# bible-kjv-text holds the compressed text (bible.data); bible-kjv holds the
# `bible` program that decodes it. Both come from the source package bible-kjv.
if ! apt-get download "bible-kjv-text=$version" "bible-kjv=$version" >download.log 2>&1; then
  cat download.log >&2
  echo "prepare_data.sh: apt-get download of bible-kjv-text=$version and bible-kjv=$version failed;" \
       "run 'apt-get update' first, or set KJV_DEB_VERSION to a version 'apt-cache policy bible-kjv-text' lists" >&2
  exit 1
fi
for deb in bible-kjv-text_*.deb bible-kjv_*.deb; do dpkg-deb -x "$deb" root; done

# -f turns pretty-printing off: one verse per line, "Ge1:1 In the beginning ...".
root/usr/bin/bible -f -p "$work/root/usr/lib" 'Gen1:1-Rev22:21' </dev/null >verses.txt

text_deb="$(ls bible-kjv-text_*.deb)"
prog_deb="$(ls bible-kjv_*.deb)"
export TEXT_DEB="$text_deb" PROG_DEB="$prog_deb" OUT="$out"
export TEXT_PKG="$(dpkg-deb -f "$text_deb" Package)" TEXT_VER="$(dpkg-deb -f "$text_deb" Version)"
export PROG_PKG="$(dpkg-deb -f "$prog_deb" Package)" PROG_VER="$(dpkg-deb -f "$prog_deb" Version)"
export TEXT_SHA="$(sha256sum "$text_deb" | cut -d' ' -f1)" PROG_SHA="$(sha256sum "$prog_deb" | cut -d' ' -f1)"

python3 - <<'PY'
import hashlib, json, os, re

HOLDOUT_EVERY = 50  # chapter k (0-based, in canonical order) is validation when k % 50 == 49

ref = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
chapters = []  # [(book, chapter, [verse text, ...])]
with open("verses.txt", encoding="ascii") as f:
    for line in f:
        m = ref.match(line.rstrip("\n"))
        if not m:
            raise SystemExit(f"prepare_data.sh: unexpected line from bible: {line!r}")
        book, chap, text = m.group(1), int(m.group(2)), m.group(4)
        text = re.sub(r"\s+", " ", text).strip()  # the source has a few double spaces
        if not chapters or chapters[-1][:2] != (book, chap):
            chapters.append((book, chap, []))
        chapters[-1][2].append(text)

split = {"train": [], "val": []}
for k, (book, chap, verses) in enumerate(chapters):
    split["val" if k % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else "train"].append((book, chap, verses))

out = os.environ["OUT"]
files = {}
for name, chs in split.items():
    body = "\n\n".join("\n".join(v) for _, _, v in chs) + "\n"
    path = os.path.join(out, f"{name}.txt")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(body)
    files[f"{name}.txt"] = {
        "bytes": len(body.encode()),
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
        "chapters": len(chs),
        "verses": sum(len(v) for _, _, v in chs),
    }

source = {
    "description": "King James Version of the Bible (1611; public domain), as packaged by Debian",
    "packages": [
        {"package": os.environ["TEXT_PKG"], "version": os.environ["TEXT_VER"], "file": os.environ["TEXT_DEB"],
         "sha256": os.environ["TEXT_SHA"], "role": "compressed text /usr/lib/bible.data"},
        {"package": os.environ["PROG_PKG"], "version": os.environ["PROG_VER"], "file": os.environ["PROG_DEB"],
         "sha256": os.environ["PROG_SHA"], "role": "decoder: /usr/bin/bible -f 'Gen1:1-Rev22:21'"},
    ],
    "archive": "Debian 12 (bookworm) main",
    "format": "one verse per line, verse references removed, whitespace collapsed; chapters separated by one blank line; ASCII",
    "split": f"chapters in canonical order Genesis 1 .. Revelation 22 numbered from 0; chapter k is validation when k % {HOLDOUT_EVERY} == {HOLDOUT_EVERY - 1}",
    "val_chapters": [f"{b} {c}" for b, c, _ in split["val"]],
    "files": files,
}
with open(os.path.join(out, "SOURCE.json"), "w") as f:
    json.dump(source, f, indent=2)
    f.write("\n")
print(json.dumps({k: v for k, v in source.items() if k != "val_chapters"}, indent=2))
PY
