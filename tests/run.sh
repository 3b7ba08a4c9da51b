#!/usr/bin/env bash
# Set up (idempotent), then run the project's own tests. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash lessons/setup.sh || exit 1
.venv/bin/python -m pytest tests -ra "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests — that is a failure, not a pass." >&2
  exit 1
fi
exit "$status"
