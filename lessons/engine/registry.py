"""The registry of checks: every check each stage has, in one committed file.

A stage counts as passed only when every check in this registry passed on one
file content. What one ``pytest`` run happened to collect (``-k``, a single
test file, one node id) is never enough: the run is compared with this list.

``checks/registry.json`` is written by ``python -m lessons registry`` from a
``pytest --collect-only`` of ``checks/``; a project test fails when the two
disagree, so a new check cannot be forgotten here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache

from .errors import LabError
from .paths import CHECKS_DIR, PROJECT_ROOT
from .stages import STAGES

REGISTRY_FILE = CHECKS_DIR / "registry.json"


def check_name(nodeid: str) -> str:
    """``checks/stage2/test_data.py::test_split[seed]`` -> ``test_split[seed]``: how a check is named in the store."""
    return nodeid.split("::")[-1]


@lru_cache(maxsize=1)
def registry() -> dict[str, tuple[str, ...]]:
    """``{"stage1": ("test_pick_device_prefers_cuda", ...), ...}``: every check of every stage."""
    try:
        listed = json.loads(REGISTRY_FILE.read_text())
    except (OSError, ValueError) as error:
        raise LabError(f"the registry of checks {REGISTRY_FILE} cannot be read ({error}): "
                       "run `python -m lessons registry` to write it again.") from None
    return {key: tuple(names) for key, names in listed.items()}


def stage_checks(stage_key: str) -> tuple[str, ...]:
    """The names of every check of one stage (empty for a stage the registry does not know)."""
    return registry().get(stage_key, ())


def collect() -> dict[str, list[str]]:
    """What ``pytest --collect-only checks`` finds, by stage, in collection order."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "checks"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"collecting the checks failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    found: dict[str, list[str]] = {stage.key: [] for stage in STAGES}
    for line in done.stdout.splitlines():
        if "::" in line and line.startswith("checks/"):
            found[line.split("/")[1]].append(check_name(line))
    return found


def write_registry() -> dict[str, list[str]]:
    """Collect the checks and write ``checks/registry.json``; a name twice in one stage is an error."""
    found = collect()
    for key, names in found.items():
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise LabError(f"{key} has two checks named {', '.join(twice)}: give each check of a stage its own name.")
    REGISTRY_FILE.write_text(json.dumps(found, indent=1) + "\n")
    registry.cache_clear()
    return found
