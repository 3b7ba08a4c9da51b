"""Stage 2 results: the data mess before and after cleaning, one recipe formatted, the split.

Runs the learner's ``load_recipes``, ``data_mess_report``, ``format_recipe``,
``recipe_checks`` and ``prepare_splits`` in the worker process
(``dashboard/tasks/stage2.py``), where the recipes read stay loaded.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import bar_chart
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import stage2 as tasks
from dashboard.ui import LOAD_LIMIT_S, demo_mode, friendly, run_task
from lessons.engine.store import Store

SOURCES = {"wikibooks": "Wikibooks, English (embedded, 3,129 recipes)",
           "wikibooks-de": "Wikibooks, German (embedded)",
           "wikibooks-da": "Wikibooks, Danish (embedded)",
           "data/recipenlg_sample.csv": "RecipeNLG layout: a small sample with its mess"}
REPORT_SAMPLES = 3  # cleaned, formatted recipes kept for the lab report: enough to show the format, short to read


def draw(ref: LessonRef, store: Store) -> None:
    source = st.selectbox("Data source", list(SOURCES), format_func=SOURCES.get, key="stage2_source")
    overview = {"count": 0}
    with friendly("reading the recipes with load_recipes"):
        with st.spinner("Reading the recipes with your load_recipes …"):
            overview = run_task(tasks.overview, ref, source, timeout_s=LOAD_LIMIT_S,
                                doing="reading the recipes with load_recipes")
    if not overview["count"]:
        return

    report = None
    with friendly("measuring the mess with data_mess_report"):
        with st.spinner("Measuring the mess with your data_mess_report …"):
            report = run_task(tasks.mess_report, ref, source, timeout_s=LOAD_LIMIT_S,
                              doing="measuring the mess with data_mess_report")
        if store.result("stage2", "data_mess_report") != report:  # keep the newest, once
            store.put_result("stage2", "data_mess_report", report)
    if report:
        columns = st.columns(3)
        columns[0].metric("Raw recipes", f"{report['recipes']:,}")
        columns[1].metric("Kept by the reference's filter" if demo_mode() else "Kept by your filter",
                          f"{report['kept']:,}")
        columns[2].metric("Removed", f"{report['recipes'] - report['kept']:,}")
        left, right = st.columns(2)
        with left:
            st.altair_chart(bar_chart(stage_data.mess_rows(report), x="kind of mess", y="recipes", horizontal=True,
                                      title="Before cleaning: recipes with markup"), width="stretch")
        with right:
            removed = stage_data.removal_rows(report)  # kept is the metric above: beside 3,011 these bars vanish
            if removed:
                st.altair_chart(bar_chart(removed, x="rule failed", y="recipes", horizontal=True,
                                          title=f"After filtering: recipes removed, by rule ({report['kept']:,} "
                                                "kept)"), width="stretch")
            else:
                st.success(f"Your filter removed no recipe: all {report['kept']:,} kept.")
        with st.expander("What each field holds"):
            st.dataframe(stage_data.field_rows(report), hide_index=True)

    st.markdown("#### One recipe, before and after")
    count = overview["count"]
    index = int(st.number_input("Recipe number", 0, count - 1, value=overview["messy"],
                                key="stage2_index", help="The first recipe with markup is chosen for you."))
    left, right = st.columns(2)
    with left:
        st.caption("Raw, as load_recipes returns it")
        with friendly("showing the recipe"):
            st.json(run_task(tasks.recipe, ref, source, index, doing="showing the recipe"), expanded=True)
    with right:
        st.caption("format_recipe, and recipe_checks")
        with friendly("formatting with format_recipe"):
            st.code(run_task(tasks.format_recipe, ref, source, index, doing="formatting with format_recipe"),
                    language="text", wrap_lines=True)
        with friendly("judging it with recipe_checks"):
            for rule, passed in run_task(tasks.recipe_checks, ref, source, index,
                                         doing="judging it with recipe_checks").items():
                st.markdown(f"{'✅' if passed else '❌'} {rule}")

    st.markdown("#### The split")
    left, right = st.columns(2)
    n_recipes = left.slider("Recipes to use (n_recipes)", 20, max(40, min(3000, count)), min(500, count),
                            step=10, key="stage2_n_recipes")
    test_size = right.slider("Validation share (test_size)", 0.05, 0.5, 0.1, step=0.05, key="stage2_test_size")
    with friendly("splitting with prepare_splits"):
        splits = run_task(tasks.split, ref, source, n_recipes, test_size, seed=42, samples=REPORT_SAMPLES,
                          timeout_s=LOAD_LIMIT_S, doing="splitting with prepare_splits")
        columns = st.columns(3)
        columns[0].metric("Train", f"{splits['train']:,}")
        columns[1].metric("Validation", f"{splits['validation']:,}")
        leaks = splits["leaks"]
        columns[2].metric("Titles in both", len(leaks), help="A title in both splits is a leak: should be 0.")
        if leaks:
            st.error("Leak: these titles are in both splits: " + ", ".join(leaks[:10]))
        st.caption("The first training example:")
        st.code(splits["first_text"], language="text", wrap_lines=True)
        samples = splits["samples"]
        if store.result("stage2", "cleaned_samples") != samples:  # for the lab report; kept once per change
            store.put_result("stage2", "cleaned_samples", samples)
