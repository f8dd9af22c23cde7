#!/usr/bin/env bash
# GPU check of cxrbench (docs/performance.md, "GPU check"): the optimised sweep on MIMIC-size synthetic data with
# full-size random-weight clip / cxr_clip / medclip checkpoints. Installs nothing; runs offline.
#   bash scripts/gpu_check.sh --device cuda [--out gpu_check.json] [--naive-studies 100] ...
#   bash scripts/gpu_check.sh --device cpu --studies 6 --image-size 320 --models clip   # CPU smoke run
# PYTHON picks the interpreter (default: python, i.e. the active environment with cxrbench installed).
set -euo pipefail
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${PYTHON:-python}" "$(dirname "${BASH_SOURCE[0]}")/gpu_check.py" "$@"
