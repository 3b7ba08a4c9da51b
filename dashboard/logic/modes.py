"""Demo mode and what it switches: the lesson files the pages run, the learner whose results they show.

No Streamlit here: ``dashboard.ui`` keeps the mode in the session (``DEMO_KEY``)
and passes it in.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lessons.engine.stages import stage as find_stage

# Where demo mode reads and writes results: ``python -m lessons pipeline --reference`` saves for this learner
# too, and nothing made with the reference solutions ever counts as a real learner's work.
DEMO_LEARNER = "demo"
YES = {"1", "true", "yes", "on"}


def demo_requested(argv: list[str] | None = None, env: dict | None = None) -> bool:
    """Demo mode asked for on the command line (``-- --demo``) or by ``LAB_DEMO=1``.

    Args:
        argv: the command line; default ``sys.argv``.
        env: the environment; default ``os.environ``.
    """
    argv = sys.argv if argv is None else argv
    env = os.environ if env is None else env
    return "--demo" in argv or str(env.get("LAB_DEMO", "")).lower() in YES


def demo_in_address(value: str | None) -> bool:
    """Demo mode asked for by the page's address: ``?demo=1`` (what the sidebar toggle leaves there)."""
    return str(value or "").lower() in YES


def lesson_file(key: str, *, reference: bool) -> Path:
    """Where stage ``key``'s code is: the reference solution, or the learner's file (tests plant another here)."""
    stage = find_stage(key)
    return stage.reference_file if reference else stage.learner_file
