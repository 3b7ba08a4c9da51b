"""Check runs as the store records them, for tests that need a stage passed (or not) without running it."""
from __future__ import annotations

from lessons.engine.registry import stage_checks


def whole_run(key: str, outcomes: dict[str, str] | None = None) -> list[dict]:
    """A result for every check in stage ``key``'s registry: passed, except those named in ``outcomes``."""
    outcomes = outcomes or {}
    return [{"name": name, "title": f"{name} in words", "outcome": outcomes.get(name, "passed"),
             "message": "" if outcomes.get(name, "passed") == "passed" else f"{name}: not yet\n  hint: which?"}
            for name in stage_checks(key)]
