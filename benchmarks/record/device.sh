#!/usr/bin/env bash
# The record (benchmarks/record/record.yaml) on one GPU machine, through DVC: `run.py --workers`, its
# workers sharing the GPU, with the wheels of benchmarks/record/device_wheels.sh for a machine that
# reaches no package index. Run from the repository's root there:
#
#   bash benchmarks/record/device.sh
#
# WHEELS (.whl) installed into /tmp/site first, if that folder is there; DATA (.devdata/multi30k):
# the six Multi30k .gz files; PARTS ("main fullyqt_scratch"; the deploy part needs CTranslate2's wheel
# too, 43 MB more); WORKERS (12); DEVICE (cuda); DEADLINE (seconds from this script's start: the workers
# stop then, and what they finished is collected; run again, it goes on from there, on the
# same machine's WORK folder, /tmp/record_work); RECORD, CLAIMS: run.py's --record and --claims; OUT
# ($OUT, else /tmp/record_out).
# After each part, $OUT/record.tgz holds the collected record (results/<part>/, the folder layout of
# benchmarks/results/record) and $OUT/logs.tgz the workers' output; $OUT/record.log is this run's.
set -uo pipefail
WHEELS=${WHEELS:-.whl}
DATA=${DATA:-.devdata/multi30k}
PARTS=${PARTS:-main fullyqt_scratch}
WORKERS=${WORKERS:-12}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/record_work}
OUT=${OUT:-/tmp/record_out}
RECORD=${RECORD:-benchmarks/record/record.yaml}
CLAIMS=${CLAIMS:-benchmarks/record/claims.yaml}
mkdir -p "$OUT" "$WORK/results"
exec > >(tee -a "$OUT/record.log") 2>&1
command -v git > /dev/null || { echo "git is not installed here: the record's workers are git clones"; exit 2; }
[ -d "$DATA" ] || { echo "no corpus at DATA=$DATA (the six Multi30k .gz files)"; exit 2; }
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "installing $WHEELS failed"; exit 2; }
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
command -v python > /dev/null || { mkdir -p /tmp/bin && ln -sf "$(command -v python3)" /tmp/bin/python; export PATH=/tmp/bin:$PATH; }
python3 -c "import dvc, torch; print('dvc', dvc.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  || { echo "DVC or torch is missing: WHEELS=$WHEELS"; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if ! git rev-parse --git-dir > /dev/null 2>&1; then   # a copy of the working tree without its history
  git init -q && git add -A && git -c user.name=record -c user.email=record@localhost commit -qm "the record's source"
fi
HERE=$(cd "$(dirname "$0")" && pwd)
rc=0
for part in $PARTS; do
  left=${DEADLINE:+$((DEADLINE - SECONDS))}
  echo "== $part${left:+ (workers stop in $left s)}"
  python3 "$HERE/run.py" --clone "$WORK/record" --data "$DATA" --part "$part" --workers "$WORKERS" \
    --record "$RECORD" --claims "$CLAIMS" --out "$WORK/results" --set "runtime.device=$DEVICE" --set runtime.threads=1 \
    ${left:+--deadline "$left"} || rc=1
  tar czf "$OUT/.record.tgz" -C "$WORK" results && mv "$OUT/.record.tgz" "$OUT/record.tgz"
  tar czf "$OUT/.logs.tgz" -C "$WORK" record.logs 2>/dev/null && mv "$OUT/.logs.tgz" "$OUT/logs.tgz"
done
exit $rc
