#!/usr/bin/env bash
# GPU check of cxrbench (docs/performance.md, "GPU check"): the paper-size comparison (cxrbench bench --paper-size)
# at full size: 1,770 MIMIC-size synthetic JPEGs, full-size random clip / cxr_repair / medclip / cxr_clip
# checkpoints; decode per geometry (before), the naive loop, the optimised sweep, --decode fast and the
# auto-precision run in one run, plus the tower check. Installs nothing; runs offline; writes one JSON.
#   bash scripts/gpu_check.sh                                   # CUDA, writes gpu_check.json
#   bash scripts/gpu_check.sh --out /some/where.json --naive-images 40 --images 885
#   bash scripts/gpu_check.sh --device cpu --images 24 --naive-images 6 --default-fidelity \
#       --out paper_size_cpu.json                               # the CPU comparison of docs/performance.md
# Any option of `cxrbench bench --paper-size` may follow (--help lists them). PYTHON picks the interpreter
# (default: python); cxrbench is taken from this repository's src/. scripts/device_check.sh runs the same comparison
# on a bare CUDA machine (carried wheels, the corruption CPU/CUDA check, a summary). The per-model detail (each
# model's own sweep, images/s, the naive speed-up per model) is scripts/gpu_check.py.
set -euo pipefail
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
args=(--paper-size --tower-check)
case " $* " in *" --device "*) ;; *) args+=(--device cuda) ;; esac
case " $* " in *" --out "*) ;; *) args+=(--out gpu_check.json) ;; esac
exec "${PYTHON:-python}" -m cxrbench bench "${args[@]}" "$@"
