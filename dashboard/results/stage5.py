"""Stage 5 results: perplexity before and after, the two models side by side, and the measures beyond.

"Evaluate" runs the learner's ``load_finetuned``, ``perplexity``,
``compare_models``, ``format_adherence``, ``stop_rate``, ``memorised_titles``
and ``off_topic_probe`` on a finished training run's adapter and held-out
recipes from that run's own split. Everything it measures goes to the store
(evaluations ``perplexity_before``/``perplexity_after``, generations
``stage5/after``) and the page draws from the store, so the numbers stay after
a reload and the Class page can chart them.
"""
from __future__ import annotations

import gc
from types import ModuleType

import streamlit as st

from dashboard.logic.charts import bar_chart
from dashboard.ui import (LONG_LIMIT_S, adapter_dir, earlier_module, finetuned_choices, finetuned_model, friendly,
                          run_learner_code)
from lessons.engine.store import Store

EVAL_RECIPES = 40     # held-out recipes for perplexity on this page: about a minute on a laptop CPU
# The side by side samples as compare_models does by default: decoded greedily, a small model falls into
# loops and never reaches [END] even when it has learned where recipes end. 320 new tokens: 87 % of the
# Wikibooks recipes end within 320 tokens after their title (half within 189), so a model that stops is seen
# stopping; 100 cut seven recipes in eight short and showed every model as never stopping. Measured on the
# 2-core CPU: "Evaluate" on a 32-step run took 160 s, and the fine-tuned model stopped in 3 of 3, the base in 0.
SIDE_BY_SIDE = {"max_new_tokens": 320, "temperature": 0.7, "top_p": 0.95, "seed": 0}


def side_text(comparison: dict, side: str) -> str:
    """The new text of ``side`` ("base" or "finetuned") in a ``compare_models`` result (``"base"`` or ``"base_text"``)."""
    value = comparison.get(side)
    return value if isinstance(value, str) else str(comparison.get(f"{side}_text", ""))


def stop_note(comparison: dict, side: str) -> str:
    """" — stopped at [END]", or how many new tokens it wrote without stopping (a budget, not "never")."""
    if comparison.get(f"{side}_stopped"):
        return " — stopped at [END]"
    tokens = comparison.get(f"{side}_tokens")
    return f" — no [END] in {tokens} new tokens" if tokens else " — no [END]"


def evaluate(module: ModuleType, store: Store, run: dict) -> dict:
    """Measure one run with the learner's functions; save everything in the store; return the numbers."""
    from transformers import AutoModelForCausalLM

    from lessons.engine.assets import resolve_model_source

    config = run.get("config") or {}
    _, tokenizer = finetuned_model(run["id"])  # the run's tokenizer ([END] added by stage 3)
    stage1, stage2, stage3 = earlier_module("stage1"), earlier_module("stage2"), earlier_module("stage3")
    raw = stage2.load_recipes(config.get("source") or "wikibooks")
    splits = stage2.prepare_splits(raw, config.get("n_recipes"), config.get("test_size", 0.1), config.get("seed", 42))
    held_out = splits["validation"].select(range(min(EVAL_RECIPES, len(splits["validation"]))))
    max_length = int(config.get("max_length", 256))
    tokenized = held_out.map(lambda batch: stage3.tokenize_function(batch, tokenizer, max_length), batched=True,
                             remove_columns=held_out.column_names)

    base = AutoModelForCausalLM.from_pretrained(resolve_model_source(config.get("model") or None)).eval()
    base.resize_token_embeddings(len(tokenizer))  # the same ids as the fine-tuned model reads
    finetuned = module.load_finetuned(base, adapter_dir(run))
    try:
        before = module.perplexity(base, tokenized)
        after = module.perplexity(finetuned, tokenized)
        store.save_evaluation("stage5", "perplexity_before", before, run_id=run["id"],
                              details={"recipes": len(held_out)})
        store.save_evaluation("stage5", "perplexity_after", after, run_id=run["id"],
                              details={"recipes": len(held_out)})
        comparisons = []
        for prompt in stage1.BEFORE_PROMPTS:
            result = module.compare_models(prompt, base, finetuned, tokenizer, **SIDE_BY_SIDE)
            result = {**result, "prompt": prompt}
            comparisons.append(result)
            store.save_generation("stage5", "after", f"run {run['id']}", prompt, side_text(result, "finetuned"),
                                  {key: SIDE_BY_SIDE[key] for key in ("temperature", "top_p", "max_new_tokens")})
        texts = {side: [prompt + side_text(c, side) for prompt, c in zip(stage1.BEFORE_PROMPTS, comparisons)]
                 for side in ("base", "finetuned")}
        measures = {}
        for side, model in (("base", base), ("finetuned", finetuned)):
            measures[side] = {
                "format adherence": sum(module.format_adherence(t) for t in texts[side]) / len(texts[side]),
                "stop rate": module.stop_rate([side_text(c, side) for c in comparisons]),
                "memorised titles": len(module.memorised_titles(texts[side], list(splits["train"]["title"]))),
                "off-topic answer looks like a recipe": float(module.off_topic_probe(model, tokenizer)["recipe_like"]),
            }
            for name, value in measures[side].items():
                store.save_evaluation("stage5", f"{side}: {name}", float(value), run_id=run["id"])
        result = {"run": run["id"], "perplexity_before": before, "perplexity_after": after,
                  "comparisons": comparisons, "measures": measures}
        store.put_result("stage5", "evaluation", result)
        return result
    finally:
        del base, finetuned
        gc.collect()


def draw(module: ModuleType, store: Store) -> None:
    runs = {run["id"]: run for run in store.runs("train")}
    choices = finetuned_choices(store)
    if choices:
        run_id = st.selectbox("Training run to evaluate", choices[::-1], key="stage5_run")
        st.caption(f"Perplexity on {EVAL_RECIPES} held-out recipes of that run's own split, three prompts side by "
                   "side, and the measures below: about three minutes on a 2-core CPU.")
        if st.button("Evaluate this run", key="stage5_evaluate", type="primary"):
            with st.spinner("Measuring perplexity, generating side by side …"):
                with friendly("evaluating with your stage 5 functions"):
                    run_learner_code(evaluate, module, store, runs[run_id], timeout_s=LONG_LIMIT_S,
                                     doing="evaluating with your stage 5 functions")
    else:
        st.info("No finished training run with an adapter yet: train one on the 4B page, then evaluate it here.")

    perplexities = [e for e in store.evaluations("stage5") if e["name"] in ("perplexity_before", "perplexity_after")]
    if perplexities:
        st.markdown("#### Perplexity before and after")
        latest: dict[tuple, dict] = {}
        for evaluation in perplexities:
            latest[(evaluation["run_id"], evaluation["name"])] = evaluation
        rows = [{"run": str(run_id)[-13:], "model": "before (base)" if name.endswith("before") else "after (LoRA)",
                 "perplexity": round(float(e["value"]), 2)} for (run_id, name), e in latest.items()]
        st.altair_chart(bar_chart(rows, x="model", y="perplexity", colour="run",
                                  title="Perplexity on held-out recipes (lower is better)", grouped=True),
                        width="stretch")

    result = store.result("stage5", "evaluation")
    if not result:
        return
    st.markdown(f"#### Side by side (run `{result['run']}`)")
    for comparison in result.get("comparisons", []):
        st.markdown(f"**Prompt** `{comparison['prompt'].splitlines()[0]}`")
        left, right = st.columns(2)
        left.caption("base" + stop_note(comparison, "base"))
        left.code(comparison["prompt"] + side_text(comparison, "base"), language="text", wrap_lines=True)
        right.caption("fine-tuned" + stop_note(comparison, "finetuned"))
        right.code(comparison["prompt"] + side_text(comparison, "finetuned"), language="text", wrap_lines=True)
    measures = result.get("measures") or {}
    if measures:
        st.markdown("#### Beyond perplexity")
        rows = [{"measure": name, "model": side, "value": float(value)}
                for side, values in measures.items() for name, value in values.items()]
        st.altair_chart(bar_chart(rows, x="measure", y="value", colour="model", title="base vs fine-tuned",
                                  grouped=True),
                        width="stretch")
        st.dataframe(rows, hide_index=True)
