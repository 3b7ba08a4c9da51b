"""The whole assignment, end to end: ``python -m lessons pipeline``.

An instructor runs ``python -m lessons pipeline --reference --quick`` to watch
every stage run on the reference solutions (or, without ``--reference``, on
the learner's own files), on the embedded model and data, with progress bars:

  1  the base model's "before" generations for fixed recipe prompts
  2  the data-mess report, formatting and filtering counts, the split
  3  token-length stats: how many recipes truncation cuts, losing their [END]
  4A one batch: its loss and the gradient norms by layer
  4B a LoRA run, metrics streamed to the store
  5  perplexity before and after on held-out recipes; side-by-side generations
  6  a temperature and top-p sweep

Every number printed is measured in this run; the results are saved in the
store (learner "demo" for --reference) where the dashboard's demo mode finds them.
"""
from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import asdict, dataclass, field, fields

from . import job_queue
from .errors import LabError
from .measure import perplexity_from_loss
from .modules import load_stage_module
from .paths import lab_home
from .quiet import quiet_library_notices
from .store import Store


@dataclass
class PipelineSettings:
    """What the pipeline runs. ``--quick`` picks sizes that finish in about 10 minutes on a 2-core CPU."""

    model: str | None = field(default=None, metadata={"help": "model name or folder; empty = embedded SmolLM2"})
    n_recipes: int = field(default=1200, metadata={"help": "recipes used (train + validation)"})
    test_size: float = field(default=0.1, metadata={"help": "share of the recipes held out for validation"})
    eval_recipes: int = field(default=100, metadata={"help": "held-out recipes for perplexity before and after"})
    max_length: int = field(default=256, metadata={
        "help": "the assignment's tokens per example: stage 3's truncation report and the held-out perplexity use it"})
    max_steps: int = field(default=300, metadata={"help": "LoRA training steps"})
    batch_size: int = field(default=4, metadata={"help": "recipes per training step"})
    learning_rate: float | None = field(default=None, metadata={
        "help": "LoRA learning rate; empty = the lab's training default (TrainSettings)"})
    rank: int = field(default=8, metadata={"help": "LoRA rank r"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha (scaling = alpha / r)"})
    eval_every: int = field(default=50, metadata={"help": "steps between validation-loss measurements"})
    curve_recipes: int = field(default=20, metadata={"help": "validation recipes for the loss curve during training"})
    new_tokens: int = field(default=320, metadata={
        "help": "tokens generated per side-by-side prompt (a whole recipe is ~200, the longest ~770)"})
    temperature: float = field(default=0.7, metadata={
        "help": "side-by-side sampling temperature (stage 5's default; 0 = greedy, which makes a small model loop)"})
    seed: int = field(default=42, metadata={"help": "one seed for data split, initialisation and sampling"})

    @classmethod
    def quick(cls, **overrides) -> "PipelineSettings":
        # 60 steps of 4 recipes: enough for held-out perplexity to fall clearly
        # (DESIGN measured 17.5 -> 12.5), small enough for a 2-core CPU in ~10 min.
        # 1,000 recipes so that 10 % gives the 100 held-out ones perplexity is measured on.
        return cls(**{"n_recipes": 1000, "max_steps": 60, "eval_every": 20, "new_tokens": 256, **overrides})


def _banner(label: str, title: str) -> None:
    print(f"\n=== Stage {label}: {title} " + "=" * max(0, 60 - len(title)), flush=True)


def run_pipeline(settings: PipelineSettings, *, reference: bool, store: Store) -> dict:
    """Run every stage in order and return the numbers it measured.

    One phase a stage, in the lesson's order, except that the base model's perplexity is measured just
    before training (the LoRA run changes the model in place).
    """
    import torch

    stages = {key: load_stage_module(key, reference=reference)
              for key in ("stage1", "stage2", "stage3", "stage4a", "stage4b", "stage5", "stage6")}
    s1, s2, s3, s4a, s4b, s5, s6 = stages.values()
    numbers: dict = {"settings": asdict(settings), "reference": reference}
    started = time.perf_counter()
    torch.manual_seed(settings.seed)

    # The whole pipeline is one job of the training queue: it uses the GPU from its first model to its last.
    with job_queue.slot(f"pipeline-{uuid.uuid4().hex[:8]}", "pipeline", account=store.learner):
        model, tokenizer = before_picture(s1, settings, store)
        valid, splits = data_mess(s2, settings, store, numbers)
        tokenize = tokenizing(s2, s3, model, tokenizer, valid, settings, store, numbers)
        held_out = splits["validation"].select(range(min(settings.eval_recipes, len(splits["validation"]))))
        eval_tokens = tokenize(held_out)
        one_training_step(s4a, model, tokenizer, tokenize, splits["train"], settings, store, numbers)
        ppl_before = perplexity_before(s5, model, eval_tokens, store)
        lora_model, run_id = lora_training(stages, model, tokenizer, splits, settings, store)
        evaluation(s1, s5, lora_model, tokenizer, eval_tokens, ppl_before, run_id, settings, store, numbers)
        sampling(s1, s6, lora_model, tokenizer, settings, store)

    numbers["seconds"] = time.perf_counter() - started
    perplexity = numbers["perplexity"]
    print(f"\nPipeline finished in {numbers['seconds'] / 60:.1f} min. Held-out perplexity "
          f"{perplexity['before']:.2f} → {perplexity['after']:.2f} ({perplexity['change']:+.0%}).")
    return numbers


# -- run_pipeline's phases, in the order it calls them ------------------------------------------------------
def before_picture(s1, settings: PipelineSettings, store: Store):
    """Stage 1: the model and its tokenizer, a look at its tokens, and the base model's "before" generations.

    Greedy generations for stage 1's ``BEFORE_PROMPTS`` go to the store, where stage 5's page sets them beside
    the fine-tuned model's. Returns ``(model, tokenizer)``.
    """
    _banner("1", "a model, its tokens, the 'before' picture")
    model, tokenizer = s1.load_model_and_tokenizer(settings.model)
    counts = s1.count_parameters(model)
    print(f"model: {type(model).__name__}, {counts['total']:,} parameters, device {s1.pick_device()}")
    tokens = s1.show_tokens(tokenizer, "RECIPE: Banana Pancakes")
    print("tokens: " + " | ".join(t["token"] for t in tokens))
    before = {}
    for prompt in _progress(s1.BEFORE_PROMPTS, "before generations"):
        text = s1.generate_text(model, tokenizer, prompt, max_new_tokens=60, temperature=0.0, seed=settings.seed)
        before[prompt] = text
        store.save_generation("stage1", "before", "base", prompt, text, {"temperature": 0, "max_new_tokens": 60})
    for prompt, text in before.items():
        print(f"--- {prompt!r}\n{text.strip()[:300]}")
    return model, tokenizer


def data_mess(s2, settings: PipelineSettings, store: Store, numbers: dict):
    """Stage 2: the raw Wikibooks recipes, their data-mess report, the valid ones, and the seeded split.

    Returns ``(valid, splits)``; the counts go into ``numbers["data"]``.
    """
    _banner("2", "the data mess: load, format, filter, split")
    raw = s2.load_recipes("wikibooks")
    report = s2.data_mess_report(raw)
    store.put_result("stage2", "data_mess_report", report)
    valid = [r for r in raw if s2.is_valid_recipe(r)]
    print(f"loaded {len(raw):,} raw recipes; {len(valid):,} pass is_valid_recipe ({len(raw) - len(valid):,} removed)")
    splits = s2.prepare_splits(raw, settings.n_recipes, settings.test_size, settings.seed)
    print(f"split: {len(splits['train']):,} train / {len(splits['validation']):,} validation")
    print("example:\n" + splits["train"][0]["text"][:400])
    numbers["data"] = {"raw": len(raw), "valid": len(valid), "train": len(splits["train"]),
                       "validation": len(splits["validation"])}
    return valid, splits


def tokenizing(s2, s3, model, tokenizer, valid: list, settings: PipelineSettings, store: Store, numbers: dict):
    """Stage 3: the tokenizer configured (pad token, ``[END]``), the token-length report, and a ``tokenize``.

    ``[END]``'s row starts from ``<|im_end|>``'s here, as the lab's training does it
    (``training.init_end_from_eos``), so that perplexity before and after share the same starting row.
    Returns ``tokenize(dataset)``: stage 3's ``tokenize_function`` mapped over a split at ``max_length``.
    """
    from .training import init_end_from_eos

    _banner("3", "tokenizing: padding, truncation, [END]")
    tokenizer_report = s3.configure_tokenizer(tokenizer, model)
    print(f"tokenizer: {tokenizer_report}")
    init_end_from_eos(model, tokenizer)
    all_texts = [s2.format_recipe(r)["text"] for r in valid]
    stats = s3.token_length_stats(all_texts, tokenizer, settings.max_length)
    store.put_result("stage3", "token_length_stats", {k: v for k, v in stats.items() if k != "lengths"})
    print(f"formatted recipes: median {stats['median']:.0f} tokens, "
          f"{stats['share_longer']:.0%} longer than {settings.max_length} "
          f"({stats['lost_end_marker']:,} lose their [END] to truncation)")
    numbers["tokens"] = {k: stats[k] for k in ("median", "share_longer", "lost_end_marker")}

    def tokenize(dataset):
        return dataset.map(lambda batch: s3.tokenize_function(batch, tokenizer, settings.max_length),
                           batched=True, remove_columns=dataset.column_names, desc="Running tokenizer on dataset")
    return tokenize


def one_training_step(s4a, model, tokenizer, tokenize, train, settings: PipelineSettings, store: Store,
                      numbers: dict) -> None:
    """Stage 4A: the first ``batch_size`` training recipes through the model, their loss, the gradient norms.

    Stage 4A's ``backward_and_inspect`` zeroes the gradients again, so the model trains from where it was.
    """
    _banner("4A", "one training step: loss and gradients")
    collator = s4a.make_collator(tokenizer)
    batch = s4a.first_batch(tokenize(train.select(range(settings.batch_size))), collator, settings.batch_size)
    loss = s4a.forward_loss(model, batch)
    print(f"loss of one batch: {loss.item():.3f} (perplexity {perplexity_from_loss(loss.item()):.1f})")
    gradients = s4a.backward_and_inspect(model, loss)
    store.put_result("stage4a", "gradients", gradients)
    top = sorted(gradients["layers"], key=lambda layer: -layer["grad_norm"])[:3]
    print("largest gradient norms: " + ", ".join(f"{g['name']} {g['grad_norm']:.3g}" for g in top))
    numbers["one_step"] = {"loss": loss.item()}


def perplexity_before(s5, model, eval_tokens, store: Store) -> float:
    """Stage 5, before training: the base model's perplexity on the held-out recipes (stage 5's ``perplexity``)."""
    _banner("5", "perplexity before training")
    ppl_before = s5.perplexity(model, eval_tokens)
    store.save_evaluation("stage5", "perplexity_before", ppl_before, details={"recipes": len(eval_tokens)})
    print(f"base model perplexity on {len(eval_tokens)} held-out recipes: {ppl_before:.2f}")
    return ppl_before


def lora_training(stages: dict, model, tokenizer, splits, settings: PipelineSettings, store: Store):
    """Stage 4B: a LoRA run with ``run_training`` on the lab's default path; ``(lora_model, run_id)`` back.

    Training follows the lab's defaults (whole recipes grouped by length, bf16 where it helps: see
    ``python -m lessons bench``); only what the instructor set here is passed on. The validation curve during
    training uses a slice of ``curve_recipes``: the held-out recipes are for perplexity before and after
    (each in-training pass over all 100 of them cost ~100 s here).
    """
    from datasets import DatasetDict

    from .training import TrainSettings, run_training

    _banner("4B", "LoRA training")
    overrides = {"learning_rate": settings.learning_rate} if settings.learning_rate is not None else {}
    train_settings = TrainSettings(model=settings.model, n_recipes=settings.n_recipes, test_size=settings.test_size,
                                   rank=settings.rank, alpha=settings.alpha, batch_size=settings.batch_size,
                                   max_steps=settings.max_steps, eval_every=settings.eval_every, seed=settings.seed,
                                   **overrides)
    run_id = store.start_run("train", asdict(train_settings), name="pipeline")
    output_dir = lab_home() / "runs" / run_id
    curve_slice = splits["validation"].select(range(min(settings.curve_recipes, len(splits["validation"]))))
    summary = run_training(train_settings, store=store, run_id=run_id, modules=stages, output_dir=output_dir,
                           model=model, tokenizer=tokenizer,
                           splits=DatasetDict(train=splits["train"], validation=curve_slice))
    print(f"trained {summary.get('steps')} steps in {summary.get('seconds', 0):.0f} s; "
          f"adapter: {output_dir / 'adapter'}")
    return summary.get("model"), run_id


def evaluation(s1, s5, lora_model, tokenizer, eval_tokens, ppl_before: float, run_id: str,
               settings: PipelineSettings, store: Store, numbers: dict) -> None:
    """Stage 5, after training: perplexity after, then base and fine-tuned side by side, and the stop rate.

    LoRA was injected into the model itself, so the "before" side is a fresh copy of the base (under a second
    from the cache), given the same ``[END]`` token so both read the same ids. The change in perplexity and
    the share of side-by-side generations that stopped at ``[END]`` go into ``numbers``.
    """
    _banner("5", "evaluation: perplexity after, before/after side by side")
    ppl_after = s5.perplexity(lora_model, eval_tokens)
    store.save_evaluation("stage5", "perplexity_after", ppl_after, run_id=run_id,
                          details={"recipes": len(eval_tokens)})
    change = (ppl_after - ppl_before) / ppl_before
    print(f"held-out perplexity: {ppl_before:.2f} before → {ppl_after:.2f} after ({change:+.0%})")
    numbers["perplexity"] = {"before": ppl_before, "after": ppl_after, "change": change}
    base, _ = s1.load_model_and_tokenizer(settings.model)
    base.resize_token_embeddings(len(tokenizer))
    comparisons = []
    for prompt in _progress(s1.BEFORE_PROMPTS, "side by side"):
        result = s5.compare_models(prompt, base, lora_model, tokenizer, max_new_tokens=settings.new_tokens,
                                   temperature=settings.temperature, seed=settings.seed)
        comparisons.append(result)
        store.save_generation("stage5", "after", "finetuned", prompt, result["finetuned"],
                              {"temperature": settings.temperature, "max_new_tokens": settings.new_tokens})
        print(f"--- {prompt!r}\n[base]\n{result['base'].strip()[:300]}\n"
              f"[fine-tuned]\n{result['finetuned'].strip()[:400]}")
    numbers["stop_rate"] = sum(bool(c.get("finetuned_stopped")) for c in comparisons) / len(comparisons)
    print(f"fine-tuned stopped at [END] in {numbers['stop_rate']:.0%} of {len(comparisons)} side-by-side prompts")


def sampling(s1, s6, lora_model, tokenizer, settings: PipelineSettings, store: Store) -> None:
    """Stage 6: a sweep over temperature and top-p on the fine-tuned model, one prompt, saved for the page."""
    _banner("6", "sampling: temperature and top-p")
    sweep = s6.sampling_sweep(lora_model, tokenizer, s1.BEFORE_PROMPTS[0], temperatures=[0.3, 0.8, 1.3],
                              top_ps=[0.5, 0.95], max_new_tokens=40, seed=settings.seed)
    for row in sweep:
        print(f"T={row['temperature']:<4} top_p={row['top_p']:<5} {row['text'].strip()[:100]!r}")
    store.put_result("stage6", "sweep", sweep)


def _progress(items, description: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, leave=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", action="store_true", help="run the reference solutions, not your files")
    parser.add_argument("--quick", action="store_true", help="small sizes: about 10 minutes on a 2-core CPU")
    for option in fields(PipelineSettings):
        kind = float if option.name == "learning_rate" else type(option.default) if option.default is not None else str
        parser.add_argument("--" + option.name.replace("_", "-"), type=kind, default=None, help=option.metadata["help"])
    args = parser.parse_args(argv)
    quiet_library_notices()  # the instructor reads the lesson's numbers, not notices for library authors
    overrides = {f.name: getattr(args, f.name) for f in fields(PipelineSettings) if getattr(args, f.name) is not None}
    settings = PipelineSettings.quick(**overrides) if args.quick else PipelineSettings(**overrides)
    learner = "demo" if args.reference else None
    try:
        with Store(learner=learner) as store:
            run_pipeline(settings, reference=args.reference, store=store)
    except NotImplementedError as error:
        raise LabError(f"{error}\n  hint: finish that stage (its checks say what is missing), "
                       "or run the reference with --reference.") from None
    return 0
