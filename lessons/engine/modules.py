"""Load a stage's module: the learner's file, or the reference solution (demo mode, --reference)."""
from __future__ import annotations

import importlib.util
from types import ModuleType

from .errors import LabError
from .stages import stage as find_stage


def load_stage_module(key: str, *, reference: bool = False) -> ModuleType:
    """``load_stage_module("stage2")`` → the learner's ``lessons/stage2_data.py`` as a module.

    With ``reference=True`` the reference solution instead; a clear ``LabError``
    if it was withheld (a learner handout has no ``lessons/reference/``).
    """
    stage = find_stage(key)
    path = stage.reference_file if reference else stage.learner_file
    if not path.exists():
        raise LabError(f"{path.name} is not in lessons/{'reference/' if reference else ''}: "
                       + ("the reference solutions were withheld in this copy." if reference
                          else "run `python -m lessons generate`."))
    name = f"lessons.{'reference.' if reference else ''}{stage.module}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
