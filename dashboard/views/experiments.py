"""Experiments: your training runs side by side, and the same run again with one setting changed.

Everything drawn here is read from the store (``dashboard.logic.experiments`` computes it); the
variant is queued with ``lessons.engine.jobs.start_job`` and followed as the stage 4B page follows a run.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.logic import experiments as ex
from dashboard.logic import tiers
from dashboard.logic.charts import bar_chart, runs_loss_chart
from dashboard.results.stage4b import POLL_SECONDS, draw_run
from dashboard.ui import demo_mode, friendly, open_results_store, open_store
from lessons.engine import jobs

CHOSEN_KEY = "experiments_runs"        # the runs compared (the multiselect's own key)
VARIANT_KEY = "experiments_variant"    # the id of the variant this session queued
REFUSAL_KEY = "experiments_refusal"    # why the last "Queue the variant" was refused, in words

st.title("🧪 Experiments side by side")
st.markdown("An experiment changes **one** setting and keeps everything else: then whatever changed in the "
            "loss, the perplexity or the stop rate was that setting's doing. Pick two or more runs to see "
            "which settings differ, their loss curves on one chart, and what stage 5 measured of each.")
with open_store() as own:  # the tiers count the learner's own runs, in demo mode too
    experiments_asked = [j for j in tiers.evaluate(tiers.Evidence.from_store(own)) if j.criterion.rule == "runs_vary"]
st.caption("The excellent tier asks for runs that differ in: " + " · ".join(
    f"{'✅' if j.met else '⬜'} {j.criterion.text.removeprefix('Runs that differ in ')}" for j in experiments_asked)
    + " (your own finished runs; Home has the whole table).")
if demo_mode():
    st.caption("Demo mode: these are runs made with the reference solutions; they never count as your own.")

store = open_results_store()
runs = {run["id"]: run for run in store.runs("train")}
if not runs:
    store.close()
    st.info("No training run yet: train one on the stage 4B page, then come back to compare and vary it.")
    st.stop()

try:
    settings_class = jobs.trainer().TrainSettings
except ImportError as error:  # the diff still reads the runs' configs; a variant needs the engine
    st.warning(f"The training engine is not available in this copy ({error}): settings are shown without help, "
               "and no variant can be queued.")
    settings_class = None

# -- choose the runs -----------------------------------------------------------------------------------
ids = list(runs)
remembered = st.session_state.get(CHOSEN_KEY)
chosen = [run_id for run_id in remembered or [] if run_id in runs]
# The newest two at first, and again when every run remembered is gone (demo mode switched stores).
st.session_state[CHOSEN_KEY] = chosen if remembered is not None and (chosen or not remembered) else ids[-2:]
picked = st.multiselect("Runs to compare", ids, format_func=lambda run_id: ex.run_choice_label(runs[run_id]),
                        key=CHOSEN_KEY, help="Finished, failed, cancelled and running runs: each says which.")
selected = [runs[run_id] for run_id in picked]

if len(selected) < 2:
    st.info("Pick two or more runs to compare them." if len(runs) > 1 else
            "One run so far: queue a variant of it below, then compare the two.")
else:
    with friendly("comparing the runs"):
        diff = ex.settings_diff(selected, settings_class)
        st.markdown("#### Settings that differ")
        if diff["differ"]:
            st.table(pd.DataFrame(diff["differ"]).set_index("setting"))  # a few rows: all of them in view
        else:
            st.info("These runs share every setting: any difference between them is chance (or your code changed).")
        st.caption("The same in all: " + ", ".join(diff["same"]))

        metrics = {run["id"]: store.metrics(run["id"]) for run in selected}
        overlay = ex.loss_overlay_rows(selected, metrics)
        if overlay:
            st.altair_chart(runs_loss_chart(overlay, title="Loss curves, one colour per run (dashed: validation)",
                                            points=True), width="stretch")
        rows = ex.comparison_rows(selected, metrics, store.evaluations("stage5"))
        st.markdown("#### Results")
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"stop rate": st.column_config.NumberColumn(format="percent"),
                                    "recipes used": st.column_config.NumberColumn(
                                        help="trained and validated on, as the run counted them: fewer than "
                                             "its data size when the recipes ran out"),
                                    "final train loss": st.column_config.NumberColumn(format="%.3f"),
                                    "final validation loss": st.column_config.NumberColumn(format="%.3f"),
                                    "perplexity after": st.column_config.NumberColumn(format="%.2f"),
                                    "tokens per second": st.column_config.NumberColumn(format="%.0f")})
        bars = ex.quality_rows(rows)
        measures = list(dict.fromkeys(bar["measure"] for bar in bars))
        for column, measure in zip(st.columns(max(1, len(measures))), measures):
            column.altair_chart(bar_chart([bar for bar in bars if bar["measure"] == measure], x="run", y="value",
                                          title=measure), width="stretch")
        waiting = [row["run"] for row in rows if row["measured by"] == ex.NOT_EVALUATED]
        if waiting:
            st.caption(f"Not evaluated yet — {ex.NOT_EVALUATED}: " + "; ".join(waiting))


# -- one setting changed -------------------------------------------------------------------------------
def queue_the_variant(source_id: str, setting: str) -> None:
    """The button's callback: runs before the page redraws, so the comparison can pick the new run at once."""
    st.session_state.pop(REFUSAL_KEY, None)
    value = st.session_state.get("experiments_value", "")
    with open_results_store() as fresh:
        try:
            run_id = ex.queue_variant(fresh.run(source_id), setting, value, store=fresh, reference=demo_mode(),
                                      settings_class=settings_class)
        except ex.VariantRefused as refusal:
            st.session_state[REFUSAL_KEY] = str(refusal)
            return
    st.session_state[VARIANT_KEY] = run_id
    st.session_state[CHOSEN_KEY] = [source_id, run_id]
    st.session_state["experiments_value"] = ""


st.markdown("#### 🧪 Same run, one setting changed")
if settings_class is None:
    st.info("Queueing a variant needs the training engine (transformers and torch).")
else:
    infos = ex.setting_infos(settings_class)
    left, middle, right = st.columns([2, 2, 1])
    source_id = left.selectbox("Run to copy", ids, index=ids.index(picked[0]) if picked else len(ids) - 1,
                               format_func=lambda run_id: ex.run_choice_label(runs[run_id]),
                               key="experiments_source")
    names = list(infos)
    setting = middle.selectbox("Setting to change", names, index=names.index("rank") if "rank" in names else 0,
                               key="experiments_setting", help="Every training setting; its meaning is below.")
    current = ex.show_value(ex.setting_value(runs[source_id], setting, infos)) if source_id else "–"
    right.text_input("New value", key="experiments_value", placeholder=f"now {current}",
                     help={"bool": "yes or no", "list": "names separated by commas", "int": "a whole number",
                           "float": "a number, such as 2e-4"}.get(infos[setting].kind, "text"))
    st.caption(f"**{setting}**: {infos[setting].help or 'no help text'} — now **{current}** in this run.")
    st.button("Queue the variant", type="primary", key="experiments_queue", on_click=queue_the_variant,
              args=(source_id, setting),
              help="Starts the same run again with only this setting changed, through the training queue.")
    if REFUSAL_KEY in st.session_state:
        st.warning(st.session_state[REFUSAL_KEY], icon="✋")

variant_id = st.session_state.get(VARIANT_KEY)
if variant_id and variant_id in runs:
    started = runs[variant_id]
    st.caption(f"Queued as “{started['name']}”: it trains in the background; the comparison above includes it.")

    @st.fragment(run_every=POLL_SECONDS if started["status"] in jobs.ACTIVE else None)
    def follow_the_variant() -> None:
        with open_results_store() as fresh:
            status = jobs.job_status(variant_id, store=fresh)
            metrics = fresh.metrics(variant_id)
        draw_run(status, metrics, prefix="experiments")
        if started["status"] in jobs.ACTIVE and status["status"] not in jobs.ACTIVE:
            st.rerun(scope="app")  # it ended: redraw the comparison with its final numbers

    follow_the_variant()
store.close()
