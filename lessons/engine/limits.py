"""Every limit the lab puts on learner code and learner files, as numbers in one place.

The checks, the dashboard, the tests and the README's troubleshooting section
all read these, so a limit is changed here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    check_timeout_s: float = 60.0          # one check; learner code past it is stopped (`--check-timeout`)
    check_kill_grace_s: float = 10.0       # after a check's limit, the supervisor waits this long, then kills the run
    exit_grace_s: float = 10.0             # a check run whose checks all ended but that does not exit is killed after this
    check_output_head_bytes: int = 200_000  # a check run's terminal output: this much from the start is shown ...
    check_output_tail_bytes: int = 50_000   # ... and this much from the end; the middle is left out, and said so
    own_dataset_max_bytes: int = 50_000_000  # stage 7: a dataset file larger than this is refused with a clear error
    own_dataset_max_rows: int = 100_000      # stage 7: a dataset with more rows than this is refused
    own_dataset_max_field_chars: int = 100_000  # stage 7: one field longer than this is refused (a broken quote?)
    report_example_chars: int = 500          # stage 7: an example kept in a cleaning report is cut to this length
    worker_output_bytes: int = 20_000        # dashboard: a page's worker keeps this much of what learner code prints
                                             # (the end), and echoes at most this much per call to the terminal
    # dashboard: how long a page waits for learner code in the worker (then the worker is stopped); each is many
    # times what a correct solution takes on a laptop CPU, so only a loop that never ends (or far too much work) hits it
    page_quick_s: float = 60.0    # formatting, a split, tokenizing, sampling arithmetic: correct code takes seconds
    page_load_s: float = 300.0    # loading the model, reading 3,129 recipes, generating a few recipes
    page_long_s: float = 900.0    # stage 4A's training step on the real model, stage 5's evaluation, a sampling sweep


LIMITS = Limits()
