#!/usr/bin/env bash
# Device check (issue 15; docs/performance.md, "GPU check"): one script for a CUDA machine without network.
#
#   bash scripts/device_check.sh                       # CUDA, full size: 1,770 MIMIC-size JPEGs, four paper models
#   bash scripts/device_check.sh --images 885          # half the images (about half the time of the comparison)
#   OUT=/tmp/dc bash scripts/device_check.sh --device cpu --images 6 --image-size 480 --checkpoint-size tiny \
#       --naive-images 4 --levels 0,0.5                # CPU smoke run of the whole script (seconds)
#
# It runs, from the repository root:
#   1. scripts/corruptions_device_check.py: every corruption on the CPU and on CUDA, compared (corruptions.md;
#      skipped with --skip-corruptions or a --device other than cuda);
#   2. `cxrbench bench --paper-size --tower-check` on CUDA: decode per geometry (before), the naive loop (on the
#      first --naive-images images), the optimised sweep, --decode fast, and the auto-precision speed run, on
#      MIMIC-size synthetic JPEGs with full-size random checkpoints of clip, cxr_repair, medclip and cxr_clip
#      (paper_size.json, rewritten after every stage, so a run cut short by --timeout keeps what it did).
# Files written into $OUT (default ./device_check_out): env.txt, corruptions.md, paper_size.json, paper_size.log,
# summary.txt (exit codes and seconds of each part). The script exits with the paper-size comparison's exit code.
#
# Environment: Python with torch/torchvision/transformers/timm/pillow/numpy/scipy/safetensors/tqdm/pyyaml. cxrbench
# is taken from ./src (PYTHONPATH). Wheels in $WHEELS (default ./wheels, when present: open_clip_torch, ftfy,
# wcwidth, kornia, kornia_rs) are installed with pip --target into a temporary folder. The IU reports come from a
# `torchxrayvision/` folder (at least data/NLMCXR_reports.tgz) found in $XRV_PARENT, ./shared, ./wheels or ./ when
# torchxrayvision is not installed. Nothing is downloaded (HF_HUB_OFFLINE=1).
#
# Time (an estimate for 16 CPU cores and an H100/H200-class GPU, from the CPU measurements in docs/performance.md):
# rendering the 1,770 JPEGs ~45 s, random checkpoints ~30 s, loading ~15 s, decode per geometry ~20 s, naive loop
# on 24 images ~40 s, optimised ~45 s, fast ~30 s, speed run ~15 s, fidelity and tower check ~15 s, corruptions
# ~60 s: about 5.5 minutes. --images N scales the JPEG-bound parts (render, decode) and the towers linearly;
# --timeout (default 420 s) bounds the comparison so the script always finishes and writes its summary.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/device_check_out}"
PYTHON="${PYTHON:-python}"
DEVICE=cuda
IMAGES=1770
NAIVE_IMAGES=24
TIMEOUT=420
SKIP_CORRUPTIONS=0
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --images) IMAGES="$2"; shift 2 ;;
        --naive-images) NAIVE_IMAGES="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --skip-corruptions) SKIP_CORRUPTIONS=1; shift ;;
        --image-size|--checkpoint-size|--levels|--models|--precision|--workers|--data-dir|--checkpoint-dir|\
        --paper-batch-size)
            EXTRA+=("$1" "$2"); shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "device_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

# --- environment: carried wheels, the torchxrayvision stub, cxrbench from ./src -----------------------------------
SITE="$(mktemp -d "${TMPDIR:-/tmp}/cxrbench-device-site.XXXXXX")"
WHEELS="${WHEELS:-$PWD/wheels}"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl \
        >> "$OUT/env.txt" 2>&1 || echo "pip --target of $WHEELS failed (see env.txt)" | tee -a "$SUMMARY"
fi
XRV=""
if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchxrayvision') is None)"; then
    for parent in "${XRV_PARENT:-}" "$PWD/shared" "$WHEELS" "$PWD"; do
        if [ -n "$parent" ] && [ -f "$parent/torchxrayvision/data/NLMCXR_reports.tgz" ]; then XRV="$parent"; break; fi
    done
    [ -n "$XRV" ] || echo "no torchxrayvision (or stub folder) found: the IU reports are missing" | tee -a "$SUMMARY"
fi
export PYTHONPATH="$PWD/src:$PWD/tests:$SITE${XRV:+:$XRV}${PYTHONPATH:+:$PYTHONPATH}"
{
    echo "date: $(date -Is)"; echo "PYTHONPATH=$PYTHONPATH"; nproc; nvidia-smi -L 2>/dev/null
    "$PYTHON" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("torch", "torchvision", "transformers", "timm", "open_clip", "ftfy", "kornia", "PIL", "numpy", "cxrbench"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), getattr(m, "__file__", ""))
    except Exception as exc:  # noqa: BLE001
        print(name, "NOT IMPORTABLE:", type(exc).__name__, exc)
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
} >> "$OUT/env.txt" 2>&1

run_part() {  # name, seconds limit, log file, command...: the command's output goes to the log file only
    local name="$1" limit="$2" logfile="$3"; shift 3
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$logfile" 2>&1
    local rc=$?
    echo "$name: exit $rc, $((SECONDS - t0)) s" >> "$SUMMARY"
    return $rc
}

# --- 1. corruptions: CPU vs CUDA (only on a CUDA device: on the CPU there is nothing to compare) -------------------
if [ "$SKIP_CORRUPTIONS" = 1 ]; then
    echo "corruptions: skipped (--skip-corruptions)" >> "$SUMMARY"
elif [ "${DEVICE%%:*}" != cuda ]; then
    echo "corruptions: skipped (--device $DEVICE: the check compares the CPU with CUDA)" >> "$SUMMARY"
else
    run_part corruptions 240 "$OUT/corruptions.md" "$PYTHON" scripts/corruptions_device_check.py
fi

# --- 2. the paper-size comparison -----------------------------------------------------------------------------------
run_part paper_size "$TIMEOUT" "$OUT/paper_size.log" "$PYTHON" -m cxrbench bench --paper-size --tower-check \
    --device "$DEVICE" --images "$IMAGES" --naive-images "$NAIVE_IMAGES" --out "$OUT/paper_size.json" \
    ${EXTRA[@]+"${EXTRA[@]}"}
RC=$?
tail -n 40 "$OUT/paper_size.log"
rm -rf "$SITE"
echo "--- $SUMMARY"
cat "$SUMMARY"
exit $RC
