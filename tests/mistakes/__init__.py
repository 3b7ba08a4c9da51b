"""Planted beginner mistakes, one module per stage (``stage2.py`` …).

Each module has ``MISTAKES``: a list of ``Mistake``. The test plants each one
into a copy of that stage's reference solution (a plain text replacement) and
runs the stage's checks on the copy: at least one check must fail, and say so
in words.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    stage: str          # "stage2"
    name: str           # what a beginner did wrong, in words
    old: str            # text in the reference solution...
    new: str            # ...replaced by this
    count: int = 1      # how many times `old` must appear (it is replaced everywhere)
    caught_by: str = "" # optional: a check name that must be among the failures
    never_says: str = ""  # optional: words no failure's message may hold (a hint about another mistake)
