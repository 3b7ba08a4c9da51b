"""Stage 5 results: perplexity before and after, the two models side by side, and the measures beyond.

"Evaluate" runs the learner's ``load_finetuned``, ``perplexity``,
``compare_models``, ``format_adherence``, ``stop_rate``, ``memorised_titles``
and ``off_topic_probe`` on a finished training run's adapter and held-out
recipes from that run's own split, in the worker process
(``dashboard/tasks/stage5.py``). Everything it measures goes to the store
(evaluations ``perplexity_before``/``perplexity_after``, generations
``stage5/after``) and the page draws from the store, so the numbers stay after
a reload and the Class page can chart them.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic.charts import bar_chart
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import stage5 as tasks
from dashboard.tasks.stage5 import side_text
from dashboard.ui import LONG_LIMIT_S, earlier_ref, finetuned_choices, friendly, model_spec, run_task
from lessons.engine.store import Store

EVAL_RECIPES = 40     # held-out recipes for perplexity on this page: about a minute on a laptop CPU
# The side by side samples as compare_models does by default: decoded greedily, a small model falls into
# loops and never reaches [END] even when it has learned where recipes end. 320 new tokens: 87 % of the
# Wikibooks recipes end within 320 tokens after their title (half within 189), so a model that stops is seen
# stopping; 100 would cut seven recipes in eight short and show every model as never stopping. Measured on the
# 2-core CPU: "Evaluate" on a 32-step run took 160 s, and the fine-tuned model stopped in 3 of 3, the base in 0.
SIDE_BY_SIDE = {"max_new_tokens": 320, "temperature": 0.7, "top_p": 0.95, "seed": 0}


def stop_note(comparison: dict, side: str) -> str:
    """" — stopped at [END]", or how many new tokens it wrote without stopping (a budget, not "never")."""
    if comparison.get(f"{side}_stopped"):
        return " — stopped at [END]"
    tokens = comparison.get(f"{side}_tokens")
    return f" — no [END] in {tokens} new tokens" if tokens else " — no [END]"


def evaluate(ref: LessonRef, store: Store, run: dict) -> dict:
    """Measure one run with the learner's functions in the worker; save everything in the store; return the result."""
    earlier = {key: earlier_ref(key) for key in ("stage1", "stage2", "stage3")}
    measured = run_task(tasks.evaluate, ref, earlier, {"id": run["id"], "config": run.get("config") or {},
                                                       "spec": model_spec(run["id"])},
                        eval_recipes=EVAL_RECIPES, side_by_side=SIDE_BY_SIDE, timeout_s=LONG_LIMIT_S,
                        doing="evaluating with your stage 5 functions")
    for evaluation in measured["evaluations"]:
        store.save_evaluation("stage5", evaluation["name"], evaluation["value"], run_id=run["id"],
                              details=evaluation["details"])
    settings = {key: SIDE_BY_SIDE[key] for key in ("temperature", "top_p", "max_new_tokens")}
    for generation in measured["generations"]:
        store.save_generation("stage5", "after", f"run {run['id']}", generation["prompt"], generation["text"],
                              settings)
    store.put_result("stage5", "evaluation", measured["result"])
    return measured["result"]


def draw(ref: LessonRef, store: Store) -> None:
    runs = {run["id"]: run for run in store.runs("train")}
    choices = finetuned_choices(store)
    if choices:
        run_id = st.selectbox("Training run to evaluate", choices[::-1], key="stage5_run")
        st.caption(f"Perplexity on {EVAL_RECIPES} held-out recipes of that run's own split, three prompts side by "
                   "side, and the measures below: about three minutes on a 2-core CPU.")
        if st.button("Evaluate this run", key="stage5_evaluate", type="primary"):
            with st.spinner("Measuring perplexity, generating side by side …"):
                with friendly("evaluating with your stage 5 functions"):
                    evaluate(ref, store, runs[run_id])
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
