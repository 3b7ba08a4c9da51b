"""Stage 5's evaluation of one finished training run, with the learner's functions, in phases with progress.

``evaluate_run`` is what the stage 5 page's "Evaluate" does, run as a background job
(``start_evaluation``) because it takes minutes: perplexity of the
base and the fine-tuned model on held-out recipes of the run's own split, three prompts
side by side, and the measures beyond perplexity. ``record_evaluation`` puts what it
measured in the store, where the page, the Class page and the lab report read it.

Phases, in order (``EVALUATION_PHASES``): each reports to ``progress(done, phase)``
when it starts, so a page can draw "phase 3 of 8: perplexity after".
"""
from __future__ import annotations

import gc
from pathlib import Path
from types import ModuleType
from typing import Callable

from .store import Store, plain

EVALUATION_STAGES = ("stage1", "stage2", "stage3", "stage5")  # the stages whose code an evaluation runs
SIDE_PROMPTS = 3   # stage 1's BEFORE_PROMPTS: three recipe titles
EVALUATION_PHASES = ("loading the models", "perplexity before (base)", "perplexity after (fine-tuned)",
                     *(f"side by side {n} of {SIDE_PROMPTS}" for n in range(1, SIDE_PROMPTS + 1)),
                     "measures beyond perplexity: base", "measures beyond perplexity: fine-tuned",
                     "BLEU and ROUGE against held-out recipes", "latency: base and fine-tuned")


def side_text(comparison: dict, side: str) -> str:
    """The new text of ``side`` ("base" or "finetuned") in a ``compare_models`` result (``side`` or ``side_text``)."""
    value = comparison.get(side)
    return value if isinstance(value, str) else str(comparison.get(f"{side}_text", ""))


def evaluate_run(modules: dict[str, ModuleType], run: dict, *, adapter: str | Path, eval_recipes: int,
                 side_by_side: dict, beyond: dict | None = None,
                 progress: Callable[[int, str], None] = lambda done, phase: None,
                 should_stop: Callable[[], bool] = lambda: False) -> dict | None:
    """Measure one finished run with the stage modules in ``modules``; None when ``should_stop`` asked to stop.

    Args:
        modules: ``{"stage1", "stage2", "stage3", "stage5"}`` → the learner's modules (or the reference's).
        run: the training run's store row (its ``id`` and ``config``: max length, model; source, data size and
            split for a run that saved no splits).
        adapter: the run's saved adapter folder (with its tokenizer, which has ``[END]``); the run's own
            splits lie beside it (``training.keep_splits``).
        eval_recipes: held-out recipes for perplexity (the first of the run's validation split).
        side_by_side: ``compare_models``'s settings (max_new_tokens, temperature, top_p, seed); the BLEU/ROUGE
            generations use them too.
        beyond: ``beyond.BeyondSettings`` as a dict (held-out recipes for BLEU/ROUGE, latency's tokens and runs);
            None for ``BeyondSettings.for_device``: small sizes on a CPU, real ones on a GPU.

    Returns:
        ``{"result", "evaluations": [{"name", "value", "details"}], "generations": [{"prompt", "text"}]}``.
    """
    from .beyond import BeyondSettings
    from .measure import training_device
    from .speed import speed_up_trainable_tokens
    from .trained import base_for, run_tokenizer
    from .training import saved_splits

    stage1, stage2, stage3, stage5 = (modules[key] for key in EVALUATION_STAGES)
    config = run.get("config") or {}
    phases = iter(enumerate(EVALUATION_PHASES))
    # sized where the job runs (a Slurm job may have the GPU the dashboard's server lacks)
    on_gpu = training_device().type == "cuda"
    beyond_settings = BeyondSettings(**beyond) if beyond else BeyondSettings.for_device(on_gpu)

    def next_phase() -> bool:
        done, phase = next(phases)
        progress(done, phase)
        return not should_stop()

    if not next_phase():
        return None
    tokenizer = run_tokenizer(adapter, config.get("model") or None)  # [END] added by stage 3, as in training
    splits = saved_splits(Path(adapter).parent)  # the recipes this run held out, saved beside its adapter
    if splits is None:  # a run from before splits were saved: rebuilt as its training did, with stage 2
        raw = stage2.load_recipes(config.get("source") or "wikibooks")
        splits = stage2.prepare_splits(raw, config.get("n_recipes"), config.get("test_size", 0.1),
                                       config.get("seed", 42))
    held_out = splits["validation"].select(range(min(eval_recipes, len(splits["validation"]))))
    max_length = int(config.get("max_length", 256))
    tokenized = held_out.map(lambda batch: stage3.tokenize_function(batch, tokenizer, max_length), batched=True,
                             remove_columns=held_out.column_names)
    base = base_for(tokenizer, config.get("model") or None).to(training_device())  # a GPU where there is one
    speed_up_trainable_tokens()  # the trained [END] row at full speed, same numbers (lessons/engine/trained.py)
    finetuned = stage5.load_finetuned(base, Path(adapter))  # the learner's function, on the engine's base
    try:
        if not next_phase():
            return None
        before = float(stage5.perplexity(base, tokenized))
        if not next_phase():
            return None
        after = float(stage5.perplexity(finetuned, tokenized))
        details = {"recipes": len(held_out), "max_length": max_length}
        evaluations = [{"name": "perplexity_before", "value": before, "details": details},
                       {"name": "perplexity_after", "value": after, "details": details}]
        comparisons = []
        for prompt in list(stage1.BEFORE_PROMPTS)[:SIDE_PROMPTS]:
            if not next_phase():
                return None
            result = plain(stage5.compare_models(prompt, base, finetuned, tokenizer, **side_by_side))
            comparisons.append({**result, "prompt": prompt})
        prompts = [comparison["prompt"] for comparison in comparisons]
        texts = {side: [prompt + side_text(c, side) for prompt, c in zip(prompts, comparisons)]
                 for side in ("base", "finetuned")}
        measures = {}
        for side, model in (("base", base), ("finetuned", finetuned)):
            if not next_phase():
                return None
            measures[side] = {name: float(value) for name, value in {
                "format adherence": sum(stage5.format_adherence(t) for t in texts[side]) / len(texts[side]),
                "stop rate": stage5.stop_rate([side_text(c, side) for c in comparisons]),
                "memorised titles": len(stage5.memorised_titles(texts[side], list(splits["train"]["title"]))),
                "off-topic answer looks like a recipe": float(stage5.off_topic_probe(model, tokenizer)["recipe_like"]),
            }.items()}
            evaluations += [{"name": f"{side}: {name}", "value": value, "details": None}
                            for name, value in measures[side].items()]
        if not next_phase():
            return None
        overlap = _overlap(stage5, base, finetuned, tokenizer, splits["validation"], beyond_settings, side_by_side)
        if not next_phase():
            return None
        timing = _latency(base, finetuned, tokenizer, prompts[0], beyond_settings)
        evaluations += _beyond_evaluations(overlap, timing)
        result = {"run": run["id"], "perplexity_before": before, "perplexity_after": after, "recipes": len(held_out),
                  "comparisons": comparisons, "measures": measures, "overlap": overlap, "latency": timing}
        generations = [{"prompt": c["prompt"], "text": side_text(c, "finetuned")} for c in comparisons]
        return {"result": result, "evaluations": evaluations, "generations": generations}
    finally:
        del base, finetuned
        gc.collect()


def _overlap(stage5: ModuleType, base, finetuned, tokenizer, validation, settings, side_by_side: dict) -> dict:
    """Both models continue the start of held-out recipes (the learner's ``compare_models``); BLEU/ROUGE of each
    against the rest of its recipe."""
    from .beyond import heldout_prompt, overlap_scores

    recipes = list(validation.select(range(min(settings.overlap_recipes, len(validation))))["text"])
    pairs = []
    for text in recipes:
        prompt, reference = heldout_prompt(text)
        compared = plain(stage5.compare_models(prompt, base, finetuned, tokenizer, **side_by_side))
        pairs.append({"prompt": prompt, "reference": reference, "base": side_text(compared, "base"),
                      "finetuned": side_text(compared, "finetuned")})
    scores = {side: overlap_scores([pair[side] for pair in pairs], [pair["reference"] for pair in pairs])
              for side in ("base", "finetuned")}
    for index, pair in enumerate(pairs):
        pair["scores"] = {side: scores[side]["per_pair"][index] for side in scores}
    return {"recipes": len(pairs), "pairs": pairs,
            **{side: {key: value for key, value in scores[side].items() if key != "per_pair"} for side in scores}}


def _latency(base, finetuned, tokenizer, prompt: str, settings) -> dict:
    """Time to first token and ms per token of both models, on the same prompt with the same greedy settings,
    their runs interleaved so that a change in the machine's load slows both alike."""
    from .beyond import latency_side_by_side

    return latency_side_by_side({"base": base, "finetuned": finetuned}, tokenizer, prompt,
                                new_tokens=settings.latency_new_tokens, runs=settings.latency_runs)


BEYOND_NAMES = {"bleu": "bleu", "rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rouge_l"}  # result key → name
SIDE_SUFFIX = {"base": "base", "finetuned": "after"}  # evaluation names end in _base or _after


def _beyond_evaluations(overlap: dict, timing: dict) -> list[dict]:
    """``bleu_base``, ``rouge_l_after``, ``ttft_ms_base``, ``ms_per_token_after``, ... as evaluations."""
    evaluations = []
    for side, suffix in SIDE_SUFFIX.items():
        evaluations += [{"name": f"{name}_{suffix}", "value": float(overlap[side][key]),
                         "details": {"recipes": overlap["recipes"],
                                     "pairs": [{"prompt": p["prompt"], "text": p[side], "reference": p["reference"],
                                                "score": p["scores"][side][key]} for p in overlap["pairs"]]}}
                        for key, name in BEYOND_NAMES.items()]
        evaluations += [{"name": f"{name}_{suffix}", "value": float(timing[side][name]),
                         "details": {key: timing[side][key] for key in ("new_tokens", "runs", "device", "samples")}}
                        for name in ("ttft_ms", "ms_per_token")]
    return evaluations


def record_evaluation(store: Store, run_id: str, measured: dict, side_by_side: dict) -> None:
    """Keep what ``evaluate_run`` measured for the training run ``run_id``: evaluations, generations, the result."""
    for evaluation in measured["evaluations"]:
        store.save_evaluation("stage5", evaluation["name"], evaluation["value"], run_id=run_id,
                              details=evaluation["details"])
    settings = {key: side_by_side[key] for key in ("temperature", "top_p", "max_new_tokens") if key in side_by_side}
    for generation in measured["generations"]:
        store.save_generation("stage5", "after", f"run {run_id}", generation["prompt"], generation["text"], settings)
    store.put_result("stage5", "evaluation", measured["result"])


# -- the background job ---------------------------------------------------------------------------
def start_evaluation(run: dict, adapter: str | Path, *, reference: bool, store: Store, eval_recipes: int,
                     side_by_side: dict, beyond: dict | None = None) -> str:
    """Queue the evaluation of the finished training ``run`` and start its process; return its id at once.

    It is a run of kind ``"evaluate"`` in the store, watched, cancelled and explained like a training
    run (``jobs.job_status``, ``jobs.cancel_job``); its steps are the phases of ``EVALUATION_PHASES``.
    """
    from . import jobs

    config = {"target_run": run["id"], "adapter": str(adapter), "reference": bool(reference),
              "eval_recipes": int(eval_recipes), "side_by_side": dict(side_by_side),
              "beyond": dict(beyond) if beyond else None}
    run_id = store.start_run("evaluate", config, name=f"evaluate {run['id']}", status="queued")
    store.update_run(run_id, summary={"total_steps": len(EVALUATION_PHASES)}, checkpoint_dir=str(jobs.run_dir(run_id)))
    jobs.submit_job(run_id, store, resume=False, job="evaluate")
    return run_id


def run_evaluation_job(run_id: str, *, store_path: str | None = None, learner: str | None = None) -> int:
    """What ``python -m lessons.engine.jobs evaluate RUN_ID`` does: wait for a slot, evaluate, record, say how
    it ended."""
    from . import jobs
    from .quiet import quiet_library_notices

    quiet_library_notices()  # the log is the learner's: their numbers, not library notices
    store = Store(store_path, learner=learner)
    job = store.run(run_id)
    config = job["config"]
    target = store.run(config["target_run"])
    return jobs.run_in_slot(run_id, "evaluate", store, lambda: _evaluate(run_id, config, target, store))


def _evaluate(run_id: str, config: dict, target: dict, store: Store) -> int:
    """The evaluation itself, once the job has its slot; the run's status says how it ended."""
    import traceback

    from . import jobs
    from .modules import load_stage_module

    def progress(done: int, phase: str) -> None:
        print(f"[evaluate] {done + 1}/{len(EVALUATION_PHASES)}: {phase}", flush=True)
        store.log_metric(run_id, done, "phase", phase=phase)

    try:
        modules = {key: load_stage_module(key, reference=config["reference"]) for key in EVALUATION_STAGES}
        measured = evaluate_run(modules, target, adapter=config["adapter"], eval_recipes=config["eval_recipes"],
                                side_by_side=config["side_by_side"], beyond=config.get("beyond"), progress=progress,
                                should_stop=lambda: jobs.cancel_requested(run_id))
    except BaseException as error:  # noqa: BLE001 - whatever happened, the run says why it ended
        traceback.print_exc()
        store.update_run(run_id, status="failed", reason=jobs.explain_failure(error))
        return 1
    if measured is None:
        store.update_run(run_id, status="cancelled", reason="cancelled: nothing was recorded")
        return 0
    record_evaluation(store, config["target_run"], measured, config["side_by_side"])
    store.log_metric(run_id, len(EVALUATION_PHASES), "phase", phase="done")
    store.update_run(run_id, status="finished", reason="",
                     summary={"total_steps": len(EVALUATION_PHASES), "perplexity_before":
                              measured["result"]["perplexity_before"],
                              "perplexity_after": measured["result"]["perplexity_after"]})
    print(f"[evaluate] run {run_id} finished", flush=True)
    return 0
