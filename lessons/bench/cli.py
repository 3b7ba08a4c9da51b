"""``python -m lessons bench``: the command line, the bench's data, and the model it loads."""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import fields

from ..engine.constants import PROMPT_TEMPLATE
from ..engine.quiet import quiet_library_notices
from . import __doc__ as BENCH_DESCRIPTION  # the package's story: what the bench compares
from .run import run_bench
from .settings import QUICK, BenchSettings, say


def bench_data(settings: BenchSettings, stage2) -> tuple[list[str], list[str], list[str]]:
    """Training texts, held-out texts and stop-rate prompts: stage 2's split of all valid recipes, sliced."""
    splits = stage2.prepare_splits(stage2.load_recipes(settings.source), None, 0.1, settings.seed)
    train, validation = splits["train"], splits["validation"]
    needed = settings.n_heldout + settings.n_prompts
    n_train = len(train) if settings.n_train < 0 else settings.n_train
    if len(train) < n_train or len(validation) < needed:
        raise ValueError(f"{settings.source!r} has {len(train)} training and {len(validation)} validation recipes; "
                         f"the bench needs {settings.n_train} and {needed}")
    train_texts = list(train.select(range(n_train))["text"])
    heldout = validation.select(range(settings.n_heldout))
    prompt_titles = validation.select(range(settings.n_heldout, needed))["title"]
    prompts = [PROMPT_TEMPLATE.format(title=title) for title in prompt_titles]
    return train_texts, list(heldout["text"]), prompts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lessons bench", description=BENCH_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller run (under 15 min on a 2-core CPU): {QUICK}")
    for item in fields(BenchSettings):
        option = "--" + item.name.replace("_", "-")
        if item.type in ("bool", bool):
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=None,
                                help=item.metadata.get("help"))
        else:
            kind = {"int": int, "float": float, "float | None": float, "str": str}.get(str(item.type), str)
            parser.add_argument(option, type=kind, default=None, help=item.metadata.get("help"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    values = dict(QUICK) if args.quick else {}
    values.update({item.name: getattr(args, item.name) for item in fields(BenchSettings)
                   if getattr(args, item.name) is not None})
    settings = BenchSettings(**values)
    quiet_library_notices()  # the table and its lines, not notices for library authors

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..engine.assets import ensure_model_cache, resolve_model_source
    from ..engine.modules import load_stage_module
    from ..engine.store import Store

    ensure_model_cache(log=lambda *_: None)  # the safetensors cache: the warm loads below are timed
    source = resolve_model_source(None)
    modules = {key: load_stage_module(key, reference=True) for key in ("stage2", "stage3", "stage4a", "stage4b")}
    train_texts, heldout_texts, prompts = bench_data(settings, modules["stage2"])
    say(f"bench: {settings}")

    def load_model():
        return AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)

    with Store() if settings.save else contextlib.nullcontext() as store:
        run_bench(settings, load_model=load_model, train_texts=train_texts, heldout_texts=heldout_texts,
                  prompts=prompts, modules=modules, store=store)
    return 0
