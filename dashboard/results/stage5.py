"""Stage 5 results: perplexity before and after, the two models side by side, and the measures beyond.

"Evaluate" starts a background job (``lessons.engine.evaluation``) that runs the
learner's ``load_finetuned``, ``perplexity``, ``compare_models``,
``format_adherence``, ``stop_rate``, ``memorised_titles`` and ``off_topic_probe``
on a finished training run's adapter and held-out recipes from that run's own
split. It takes minutes, so the page shows its phase and can be closed; what it
measures goes to the store (evaluations ``perplexity_before``/``perplexity_after``,
generations ``stage5/after``) and the page draws from the store, so the numbers
stay after a reload and the Class page can chart them.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import bar_chart
from dashboard.logic.kernel import LessonRef
from dashboard.results.stage4b import POLL_SECONDS
from dashboard.ui import adapter_dir, demo_mode, finetuned_choices, open_results_store
from lessons.engine import jobs
from lessons.engine.evaluation import EVALUATION_PHASES, side_text, start_evaluation
from lessons.engine.store import Store

EVAL_RECIPES = 40     # held-out recipes for perplexity on this page
# The side by side samples as compare_models does by default: decoded greedily, a small model falls into
# loops and never reaches [END]. 320 new tokens give a model that has learned where recipes end room to stop.
SIDE_BY_SIDE = {"max_new_tokens": 320, "temperature": 0.7, "top_p": 0.95, "seed": 0}


def draw_evaluation_job(job: dict | None) -> None:
    """The evaluation job's phase while it runs (polled), why it failed or was cancelled once it ended."""
    if job is None:
        return
    active = job["status"] in jobs.ACTIVE

    @st.fragment(run_every=POLL_SECONDS if active else None)
    def live() -> None:
        with open_results_store() as fresh:
            status = jobs.job_status(job["id"], store=fresh)
            phases = [m for m in fresh.metrics(job["id"]) if m["split"] == "phase"]
        if status["status"] in jobs.ACTIVE:
            done = len(phases) - 1 if phases else 0
            phase = phases[-1]["phase"] if phases else "starting"
            st.progress(done / len(EVALUATION_PHASES),
                        text=f"Evaluating run {job['config']['target_run']}: phase {done + 1} of "
                             f"{len(EVALUATION_PHASES)}, {phase}")
            if status.get("cancel_requested"):
                st.caption("Cancelling: the evaluation stops after its current phase.")
            elif st.button("⏹ Cancel the evaluation", key=f"stage5_cancel_{job['id']}"):
                with open_results_store() as store:
                    jobs.cancel_job(job["id"], store=store)
                st.rerun(scope="fragment")
        elif status["status"] == "failed":
            st.error(f"The evaluation of run {job['config']['target_run']} failed: {status.get('reason')}. "
                     f"Its log: {jobs.log_path(job['id'])}")
        elif status["status"] == "cancelled":
            st.warning(f"The evaluation of run {job['config']['target_run']} was cancelled; nothing was recorded.")
        if active and status["status"] not in jobs.ACTIVE:
            st.rerun(scope="app")  # it ended: redraw the page with its results (and Evaluate open again)

    live()


def draw(ref: LessonRef, store: Store) -> None:
    runs = {run["id"]: run for run in store.runs("train")}
    choices = finetuned_choices(store)
    job = stage_data.newest_evaluation(store)
    if job is not None and job["status"] in jobs.ACTIVE:
        job = jobs.job_status(job["id"], store=store)  # a job whose process is gone is marked failed here
    busy = job is not None and job["status"] in jobs.ACTIVE
    if choices:
        run_id = st.selectbox("Training run to evaluate", choices[::-1], key="stage5_run")
        st.caption(f"Perplexity on up to {EVAL_RECIPES} held-out recipes of that run's own split, three prompts "
                   "side by side, and the measures below. It runs in the background, in phases: you can leave "
                   "this page and come back.")
        new_tokens = int(st.number_input(
            "New tokens per model, side by side", 4, 1024, SIDE_BY_SIDE["max_new_tokens"], key="stage5_new_tokens",
            help="Room to reach [END]: fewer is quicker, but a recipe cut short cannot show that the model stops."))
        if st.button("Evaluate this run", key="stage5_evaluate", type="primary", disabled=busy):
            start_evaluation(runs[run_id], adapter_dir(runs[run_id]), reference=demo_mode(), store=store,
                             eval_recipes=EVAL_RECIPES, side_by_side={**SIDE_BY_SIDE, "max_new_tokens": new_tokens})
            st.rerun()
    else:
        st.info("No finished training run with an adapter yet: train one on the 4B page, then evaluate it here.")
    draw_evaluation_job(job)

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
    recipes = f" on {result['recipes']} held-out recipes" if result.get("recipes") else ""
    st.markdown(f"#### Side by side (run `{result['run']}`{recipes})")
    for comparison in result.get("comparisons", []):
        st.markdown(f"**Prompt** `{comparison['prompt'].splitlines()[0]}`")
        left, right = st.columns(2)
        left.caption("base" + stage_data.stop_note(comparison, "base"))
        left.code(comparison["prompt"] + side_text(comparison, "base"), language="text", wrap_lines=True)
        right.caption("fine-tuned" + stage_data.stop_note(comparison, "finetuned"))
        right.code(comparison["prompt"] + side_text(comparison, "finetuned"), language="text", wrap_lines=True)
    measures = result.get("measures") or {}
    if measures:
        st.markdown("#### Beyond perplexity")
        split = stage_data.beyond_perplexity(measures)
        if split["all_zero"]:
            st.info("Every share below is 0 % for both models on these three prompts: neither wrote the recipe "
                    "labels, stopped at [END] or answered the off-topic question with a recipe.")
        else:
            st.altair_chart(bar_chart(split["shares"], x="measure", y="percent", colour="model", grouped=True,
                                      title="Share of the side-by-side texts (%), base vs fine-tuned"),
                            width="stretch")
        st.dataframe(split["shares"], hide_index=True)
        for row in split["counts"]:
            st.caption(f"{row['measure']}, {row['model']}: {row['texts']} of the texts copy a training title")
