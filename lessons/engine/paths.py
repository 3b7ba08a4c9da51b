"""Where things live: the project, the lab's home folder, who the learner is."""
from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LESSONS_DIR = PROJECT_ROOT / "lessons"
REFERENCE_DIR = LESSONS_DIR / "reference"
CHECKS_DIR = PROJECT_ROOT / "checks"
DATA_DIR = PROJECT_ROOT / "data"


def lab_home() -> Path:
    """The lab's home folder: model cache, store, training runs.

    ``LAB_HOME`` overrides it; the default is ``.lab/`` inside the project, so a
    learner's work stays next to their code. Made 0700 when the lab makes it (a
    folder that exists keeps its mode): on a shared server no other account enters it.
    """
    home = Path(os.environ.get("LAB_HOME") or PROJECT_ROOT / ".lab")
    if not home.is_dir():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)  # the dashboard's key lives here (dashboard/logic/access.py)
    return home


def learner_id() -> str:
    """Who is working, safe for a folder name.

    In a class (``LAB_CLASS_DIR`` set) it is the operating-system account this
    process runs as, whatever the environment says; on one's own machine it is
    ``LAB_LEARNER``, else the login name.
    """
    if os.environ.get("LAB_CLASS_DIR", "").strip():
        from .classroom import account_name

        return account_name()
    name = os.environ.get("LAB_LEARNER") or getpass.getuser() or "learner"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "learner"


def relative_to_project(path: str | Path) -> str:
    """``lessons/stage2_data.py`` rather than a long absolute path, when possible."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
