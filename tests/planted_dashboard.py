"""``python -m tests.planted_dashboard STAGE=FILE ... -- OPTIONS``: the dashboard, reading STAGE's code from FILE.

For the browser tests: a real server whose pages run a planted learner file
(one with ``os._exit(0)`` in it, say) instead of ``lessons/``. Streamlit runs
``dashboard/app.py`` inside this process, so the page code sees the
``dashboard.ui.lesson_file`` replaced here; the worker imports whatever file
the page names.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    planted = {key: Path(path) for key, path in (arg.split("=", 1) for arg in argv[:split])}

    from dashboard import ui

    original = ui.lesson_file
    ui.lesson_file = lambda key, *, reference: planted.get(key) or original(key, reference=reference)

    from streamlit.web import cli

    return cli.main(["run", "dashboard/app.py", *argv[split + 1:]], standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
