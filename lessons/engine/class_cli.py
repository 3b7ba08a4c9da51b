"""``python -m lessons class …``: the instructor's commands for a class on a shared server.

    class init DIR --instructors GROUP [--roster FILE]   make the class folder (root or an instructor)
               [--queue local|slurm --partition P --slots-per-gpu N]
    class verify [LEARNER | --all]                       re-run self-reported passes, sandboxed (root)
    class status                                          learner × stage table, verified marks
    class report --out FOLDER                             class.csv and one self-contained class.html

Every command but ``init`` finds the class from ``--dir`` or ``LAB_CLASS_DIR``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from .classroom import (CLASS_ENV, ClassError, account_uid, active_class, class_folder_problem, init_class,
                        load_class, read_roster)
from .verification import class_marks, status_table, verify


def _config(args):
    if args.dir:
        return load_class(args.dir)
    config = active_class()
    if config is None:
        raise ClassError(f"which class? pass --dir DIR or set {CLASS_ENV}=DIR")
    return config


def _init(args) -> int:
    roster = read_roster(args.roster) if args.roster else []
    config = init_class(args.dir, args.instructors, roster=roster, verifier=args.verifier,
                        verify_timeout_s=args.verify_timeout, queue=args.queue, slurm_partition=args.partition,
                        slots_per_gpu=args.slots_per_gpu)
    if account_uid(config.verifier) is None:
        if os.geteuid() == 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            config.verifier], check=True)
            print(f"made the verifier account {config.verifier} (no home, no login shell)")
        else:
            print(f"note: the verifier account {config.verifier} does not exist yet; as root: "
                  f"useradd --system --no-create-home --shell /usr/sbin/nologin {config.verifier}")
    print(f"class folder ready: {config.folder} (group {config.instructors}"
          + (f", {len(config.roster)} learners on the roster" if config.roster else ", no roster: anyone may join")
          + ")")
    print("training jobs go to " + (f"Slurm (partition {config.slurm_partition or 'the default'})"
                                    if config.queue == "slurm" else f"this server's queue in {config.folder}/_queue"))
    print(f"learners start their lab with:  {CLASS_ENV}={config.folder} bash dashboard/start.sh")
    return 0


def _verify(args) -> int:
    if not args.learner and not args.all:
        raise ClassError("verify whom? name a learner, or pass --all")
    config = _config(args)
    marks = verify(config, None if args.all else args.learner)
    print()
    print(status_table(marks))
    return 0


def _status(args) -> int:
    config = _config(args)
    problem = class_folder_problem(config)
    if problem:
        print(f"warning: the class folder {config.folder}: {problem}")
    marks = class_marks(config)
    if not marks:
        print(f"no learner has started in {config.folder} yet")
        return 0
    print(status_table(marks))
    return 0


def _report(args) -> int:
    from dashboard.logic.class_report import write_class_report

    config = _config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in write_class_report(config, out):
        print(f"wrote {path}")
    return 0


def add_commands(commands) -> None:
    """Add ``class`` and its sub-commands to the ``python -m lessons`` parser."""
    parser = commands.add_parser("class", help="a class on a shared server (instructors)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="class_command", required=True)
    init = sub.add_parser("init", help="make the class folder")
    init.add_argument("dir", help="the class folder, e.g. /srv/lora-kitchen/class")
    init.add_argument("--instructors", required=True, help="the Unix group of the class's instructors")
    init.add_argument("--roster", help="a file of the learners' login names, one per line (or a CSV's first column)")
    init.add_argument("--verifier", default="lora-kitchen-verify", help="the account class verify runs learner code as")
    init.add_argument("--verify-timeout", type=float, default=600.0, help="seconds one stage's verification may take")
    init.add_argument("--queue", choices=("local", "slurm"), default="local",
                      help="where training jobs wait: this server's queue (default) or Slurm")
    init.add_argument("--partition", default="", help="the Slurm partition for the class's jobs (default: Slurm's)")
    init.add_argument("--slots-per-gpu", type=int, default=0,
                      help="jobs sharing one GPU on the local queue (default 0: as many as measured memory allows)")
    init.set_defaults(run=_init)
    for name, run, text in (("verify", _verify, "re-run each self-reported pass on its snapshot, sandboxed"),
                            ("status", _status, "the learner × stage table"),
                            ("report", _report, "class.csv and class.html")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--dir", help=f"the class folder (default: ${CLASS_ENV})")
        if name == "verify":
            command.add_argument("learner", nargs="?", help="one learner's login name")
            command.add_argument("--all", action="store_true", help="every learner")
        if name == "report":
            command.add_argument("--out", default="class-report", help="folder to write (default: ./class-report)")
        command.set_defaults(run=run)
