#!/usr/bin/env bash
# Set up (idempotent), then run the project's own tests on LAB_TEST_WORKERS processes (default 2,
# one per core of the machines this project is built on). Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash lessons/setup.sh || exit 1
# worksteal: the whole-stage check runs take seconds each, so an idle worker takes over queued ones.
.venv/bin/python -m pytest tests -ra -n "${LAB_TEST_WORKERS:-2}" --dist worksteal "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests — that is a failure, not a pass." >&2
  exit 1
fi
exit "$status"
