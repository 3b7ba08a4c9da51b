#!/usr/bin/env bash
# Set up (idempotent), then start the LoRA Kitchen dashboard and print the address to open:
#   http://127.0.0.1:PORT/?key=KEY
# It listens on this machine only (127.0.0.1), on the first free port from 8501 (PORT=8600 chooses one).
# The key (in $LAB_HOME/dashboard.key, readable by you alone) keeps every other account on a shared server
# out: a visit without it is refused (dashboard/logic/access.py). Extra arguments go to streamlit.
# LAB_DEMO=1 starts it in demo mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash lessons/setup.sh
# One call: the port (PORT, else a free one) and the address with the key, made on first use.
ADDRESS=$(.venv/bin/python -m dashboard.logic.access address ${PORT:+--port "$PORT"})
PORT=${ADDRESS%% *}
echo "[dashboard] open ${ADDRESS#* } in your browser (Ctrl+C stops it)"
# Streamlit's own welcome message would print the address without the key: ours above is the one to open.
exec .venv/bin/python -m streamlit run dashboard/app.py --server.headless true \
  --server.address 127.0.0.1 --server.port "$PORT" --browser.gatherUsageStats false \
  --logger.hideWelcomeMessage true "$@"
