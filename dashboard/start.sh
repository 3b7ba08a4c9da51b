#!/usr/bin/env bash
# Set up (idempotent), then start the LoRA Kitchen dashboard on http://localhost:8501.
# Extra arguments go to streamlit (e.g. --server.port 8600). LAB_DEMO=1 starts it in demo mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash lessons/setup.sh
echo "[dashboard] open http://localhost:${PORT:-8501} in your browser (Ctrl+C stops it)"
exec .venv/bin/python -m streamlit run dashboard/app.py --server.headless true \
  --server.port "${PORT:-8501}" --browser.gatherUsageStats false "$@"
