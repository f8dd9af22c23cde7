#!/usr/bin/env bash
# A short check of the nightly workflow's GPU steps on a CUDA machine (a few minutes), for a device run:
#   bash scripts/nightly_gpu_check.sh          (writes under $OUT, default /tmp/nightly-gpu-check)
# 1. kernel timings twice with a fresh storage folder: the first run saves, the second compares (scripts/perf.py);
# 2. two identical sweeps on the GPU without the embedding cache, then `cxrbench diff --fail-on regression`:
#    expected to print nothing and exit 0 (GPU kernels may differ in the last bits; nothing may be flagged);
# 3. the nightly's summary step on those two folders (expected: "Nothing moved", exit 0);
# 4. the benchmark suite on the GPU against the committed thresholds.yaml (the reference models).
# Every step's exit status is printed; the script exits 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/nightly-gpu-check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CXRBENCH_PERF_STORAGE="$OUT/perf"
rm -rf "$CXRBENCH_PERF_STORAGE"
status=0
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, print the exit status
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc ($((SECONDS - t0)) s)"
  [ "$rc" -eq 0 ] || status=1
  return 0
}
python -c "import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))" || exit 1
step perf-1 python scripts/perf.py --device cuda --json "$OUT/kernel-timings-1.json"
step perf-2 python scripts/perf.py --device cuda --json "$OUT/kernel-timings-2.json"
grep -h "perf:" "$OUT/perf-1.log" "$OUT/perf-2.log"
common=(--max-studies 300 --models reference,random --levels 0,0.49 --bootstrap 1000 --device cuda
        --no-cache --no-progress --no-report --overwrite)
step run-a cxrbench run "${common[@]}" --out "$OUT/a" --run-name a
step run-b cxrbench run "${common[@]}" --out "$OUT/b" --run-name b
step diff cxrbench diff "$OUT/a" "$OUT/b" --fail-on regression --out "$OUT/diff.json"
echo "diff printed $(grep -vc '^cxrbench: ' "$OUT/diff.log" || true) line(s) besides its summary:"
cat "$OUT/diff.log"
step summary python scripts/nightly_summary.py --base "$OUT/a" --new "$OUT/b" --thresholds thresholds.yaml \
  --summary "$OUT/summary.md"
step benchmarks pytest benchmarks/ -k reference --device cuda -q -p no:cacheprovider -rs \
  --junitxml="$OUT/benchmarks.xml"
tail -3 "$OUT/benchmarks.log"
exit $status
