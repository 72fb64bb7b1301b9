#!/usr/bin/env bash
# Wheels for running the record on a GPU machine that reaches no package index (benchmarks/record/device.sh):
# DVC and everything it needs, as this environment has them, and the libraries whose versions change
# the record's numbers (SentencePiece learns another vocabulary in 0.2.2 than in 0.2.3; sacrebleu
# scores), at this environment's versions, for that machine's Python (PYVER, default 3.12), x86-64.
#
#   . .venv/bin/activate && bash benchmarks/record/device_wheels.sh      # writes .whl/ (git ignores it)
#
# A package with no wheel on the index (a pure-Python sdist) is built into one here.
set -euo pipefail
DEST=${DEST:-.whl}
PYVER=${PYVER:-3.12}
mkdir -p "$DEST"
pins=$(python - <<'PY'
import importlib.metadata as md, re
from packaging.requirements import Requirement
seen, stack = {}, ["dvc", "sentencepiece", "sacrebleu"]
while stack:
    name = stack.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    seen[key] = dist.version
    if key in ("sentencepiece", "sacrebleu"):   # their own needs are on the machine already
        continue
    stack += [Requirement(r).name for r in dist.requires or []
              if not Requirement(r).marker or Requirement(r).marker.evaluate({"extra": ""})]
print("\n".join(f"{k}=={v}" for k, v in sorted(seen.items())))
PY
)
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
built=0
for pin in $pins; do
  if ! python -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
       "${platforms[@]}" -d "$DEST" "$pin" 2>/dev/null; then
    python -m pip wheel -q --no-deps -w "$DEST" "$pin"   # pure Python: the wheel built here runs there
    built=$((built + 1))
  fi
done
echo "$(echo "$pins" | wc -l) packages ($built built here) in $DEST: $(du -sh "$DEST" | cut -f1)"
