"""Stage 5 results: perplexity before and after, the two models side by side, and the measures beyond.

"Evaluate" starts a background job (``lessons.engine.evaluation``) that runs the
learner's ``load_finetuned``, ``perplexity``, ``compare_models``,
``format_adherence``, ``stop_rate``, ``memorised_titles`` and ``off_topic_probe``
on a finished training run's adapter and held-out recipes from that run's own
split. It takes minutes, so the page shows its phase and can be closed; what it
measures goes to the store (evaluations ``perplexity_before``/``perplexity_after``,
generations ``stage5/after``, BLEU/ROUGE and latency as ``bleu_base``, ``ttft_ms_after``, ...)
and the page draws from the store, so the numbers stay after a reload and the Class page can chart them.
The blind evaluation's ratings are saved the moment a button is pressed (``lessons.engine.blind_rating``).
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import beyond, stage_data
from dashboard.logic.charts import bar_chart
from dashboard.logic.kernel import LessonRef
from dashboard.results.stage4b import POLL_SECONDS
from dashboard.ui import adapter_dir, demo_mode, finetuned_choices, open_results_store
from lessons.engine import jobs
from lessons.engine.blind_rating import CHOICES, BlindPair, blind_pairs, save_rating, saved_ratings, win_rate
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


def rate(pair: BlindPair, choice: str) -> None:
    """A rating button's action: keep the rating at once, before the page redraws."""
    with open_results_store() as store:
        save_rating(store, pair, choice)


def draw_blind_evaluation(pairs: list[BlindPair], store: Store) -> None:
    """The pairs as A and B with three buttons each; a rated pair names its models; the win rate under them."""
    st.markdown("#### Blind evaluation: which recipe is better?")
    st.markdown(beyond.BLIND_TEXT)
    ratings = saved_ratings(store)
    labels = dict(zip(CHOICES, ("A is better", "B is better", "Tie")))
    for number, pair in enumerate(pairs, 1):
        rating = ratings.get(pair.pair_id)
        with st.container(border=True, key=f"stage5_pair_{pair.pair_id}"):  # the key: a page test finds this pair
            st.markdown(f"**Pair {number} of {len(pairs)}** · prompt `{(pair.prompt.splitlines() or [''])[0]}`")
            left, right = st.columns(2)
            for column, letter, text in ((left, "A", pair.a), (right, "B", pair.b)):
                model = "fine-tuned" if letter == pair.finetuned_is else "base"
                column.caption(f"{letter} — {model}" if rating else letter)
                column.code(pair.prompt + text, language="text", wrap_lines=True)
            buttons = st.columns(len(CHOICES))
            for column, choice in zip(buttons, CHOICES):
                chosen = rating is not None and rating["choice"] == choice
                column.button(labels[choice], key=f"stage5_rate_{pair.pair_id}_{choice}", on_click=rate,
                              args=(pair, choice), type="primary" if chosen else "secondary", width="stretch")
            if rating:
                st.caption(f"You rated: {labels[rating['choice']]}. Revealed: {pair.finetuned_is} was the fine-tuned "
                           f"model, {'B' if pair.finetuned_is == 'A' else 'A'} the base model.")
    shown = {pair.pair_id for pair in pairs}
    stats = win_rate({key: value for key, value in ratings.items() if key in shown})
    st.markdown(f"**Rated {stats['ratings']} of {len(pairs)} pairs.** {beyond.win_rate_sentence(stats)}")
    if stats["ratings"]:
        st.altair_chart(bar_chart(beyond.win_rate_rows(stats), x="outcome", y="ratings",
                                  title="Your blind ratings of this evaluation's pairs"), width="stretch")
    earlier = len(ratings) - stats["ratings"]
    if earlier:
        everything = win_rate(ratings)
        st.caption(f"With your {earlier} ratings of earlier evaluations: {everything['ratings']} ratings, a win rate "
                   f"of {100 * everything['win_rate']:.0f} % (what the Class page pools).")


def draw_overlap_and_latency(result: dict) -> None:
    """BLEU/ROUGE base vs fine-tuned, then latency base vs fine-tuned, each a chart with what it can say."""
    overlap = beyond.overlap_rows(result)
    if overlap:
        recipes = (result.get("overlap") or {}).get("recipes", 0)
        st.markdown("#### Word overlap with held-out recipes (BLEU, ROUGE)")
        st.altair_chart(bar_chart(overlap, x="measure", y="score", colour="model", grouped=True,
                                  title=f"Overlap with {recipes} held-out recipes (higher: more words in common)"),
                        width="stretch")
        st.markdown(beyond.OVERLAP_TEXT)
    timing = beyond.latency_rows(result)
    if timing:
        st.markdown("#### Latency: how long a person waits")
        st.altair_chart(bar_chart(timing, x="measure", y="ms", colour="model", grouped=True,
                                  title="Latency, base vs fine-tuned (lower is faster)"), width="stretch")
        st.caption(beyond.latency_caption(result))
        st.markdown(beyond.LATENCY_TEXT)


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
    pairs = blind_pairs(result)
    if pairs:
        draw_blind_evaluation(pairs, store)
    draw_overlap_and_latency(result)
    recipes = f" on {result['recipes']} held-out recipes" if result.get("recipes") else ""
    st.markdown(f"#### Side by side (run `{result['run']}`{recipes})")
    rated = set(saved_ratings(store))
    unrated = [pair for pair in pairs if pair.pair_id not in rated]
    with st.expander("The three prompts with the models named" + (
            f" (this tells the answers of blind pairs: {len(unrated)} still to rate above)" if unrated else ""),
            expanded=not unrated):
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
