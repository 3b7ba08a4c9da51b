"""Stage 2 results: the data mess before and after cleaning, one recipe formatted, the split.

Runs the learner's ``load_recipes``, ``data_mess_report``, ``format_recipe``,
``recipe_checks`` and ``prepare_splits``.
"""
from __future__ import annotations

from types import ModuleType

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import bar_chart
from dashboard.ui import LOAD_LIMIT_S, friendly, module_fingerprint, run_learner_code
from lessons.engine.store import Store

SOURCES = {"wikibooks": "Wikibooks, English (embedded, 3,129 recipes)",
           "wikibooks-de": "Wikibooks, German (embedded)",
           "wikibooks-da": "Wikibooks, Danish (embedded)",
           "data/recipenlg_sample.csv": "RecipeNLG layout: a small sample with its mess"}
REPORT_SAMPLES = 3  # cleaned, formatted recipes kept for the lab report: enough to show the format, short to read


@st.cache_data(show_spinner="Reading the recipes with your load_recipes …", max_entries=4)
def _raw(fingerprint: str, source: str, _module: ModuleType) -> list[dict]:
    return run_learner_code(_module.load_recipes, source, timeout_s=LOAD_LIMIT_S,
                            doing="reading the recipes with load_recipes")


@st.cache_data(show_spinner="Measuring the mess with data_mess_report …", max_entries=4)
def _report(fingerprint: str, source: str, _module: ModuleType) -> dict:
    return run_learner_code(_module.data_mess_report, _raw(fingerprint, source, _module), timeout_s=LOAD_LIMIT_S,
                            doing="measuring the mess with data_mess_report")


def draw(module: ModuleType, store: Store) -> None:
    fingerprint = module_fingerprint(module)
    source = st.selectbox("Data source", list(SOURCES), format_func=SOURCES.get, key="stage2_source")
    raw: list[dict] = []
    with friendly("reading the recipes with load_recipes"):
        raw = _raw(fingerprint, source, module)
    if not raw:
        return

    report = None
    with friendly("measuring the mess with data_mess_report"):
        report = _report(fingerprint, source, module)
        if store.result("stage2", "data_mess_report") != report:  # keep the newest, once
            store.put_result("stage2", "data_mess_report", report)
    if report:
        columns = st.columns(3)
        columns[0].metric("Raw recipes", f"{report['recipes']:,}")
        columns[1].metric("Kept by your filter", f"{report['kept']:,}")
        columns[2].metric("Removed", f"{report['recipes'] - report['kept']:,}")
        left, right = st.columns(2)
        with left:
            st.altair_chart(bar_chart(stage_data.mess_rows(report), x="kind of mess", y="recipes", horizontal=True,
                                      title="Before cleaning: recipes with markup"), width="stretch")
        with right:
            st.altair_chart(bar_chart(stage_data.filter_rows(report), x="what", y="recipes", colour="outcome",
                                      horizontal=True, title="After filtering: removed and kept"), width="stretch")
        with st.expander("What each field holds"):
            st.dataframe(stage_data.field_rows(report), hide_index=True)

    st.markdown("#### One recipe, before and after")
    index = st.number_input("Recipe number", 0, len(raw) - 1, value=stage_data.messy_example(raw),
                            key="stage2_index", help="The first recipe with markup is chosen for you.")
    recipe = raw[int(index)]
    left, right = st.columns(2)
    with left:
        st.caption("Raw, as load_recipes returns it")
        st.json(recipe, expanded=True)
    with right:
        st.caption("format_recipe, and recipe_checks")
        with friendly("formatting with format_recipe"):
            st.code(run_learner_code(module.format_recipe, recipe, doing="formatting with format_recipe")["text"],
                    language="text", wrap_lines=True)
        with friendly("judging it with recipe_checks"):
            for rule, passed in run_learner_code(module.recipe_checks, recipe,
                                                 doing="judging it with recipe_checks").items():
                st.markdown(f"{'✅' if passed else '❌'} {rule}")

    st.markdown("#### The split")
    left, right = st.columns(2)
    n_recipes = left.slider("Recipes to use (n_recipes)", 20, max(40, min(3000, len(raw))), min(500, len(raw)),
                            step=10, key="stage2_n_recipes")
    test_size = right.slider("Validation share (test_size)", 0.05, 0.5, 0.1, step=0.05, key="stage2_test_size")
    with friendly("splitting with prepare_splits"):
        splits = run_learner_code(module.prepare_splits, raw, n_recipes=n_recipes, test_size=test_size, seed=42,
                                  timeout_s=LOAD_LIMIT_S, doing="splitting with prepare_splits")
        columns = st.columns(3)
        columns[0].metric("Train", f"{len(splits['train']):,}")
        columns[1].metric("Validation", f"{len(splits['validation']):,}")
        leaks = stage_data.split_overlap(splits)
        columns[2].metric("Titles in both", len(leaks), help="A title in both splits is a leak: should be 0.")
        if leaks:
            st.error("Leak: these titles are in both splits: " + ", ".join(leaks[:10]))
        st.caption("The first training example:")
        st.code(splits["train"][0]["text"], language="text", wrap_lines=True)
        samples = [{"title": str(row.get("title", "")), "text": row["text"]}
                   for row in splits["train"].select(range(min(REPORT_SAMPLES, len(splits["train"]))))]
        if store.result("stage2", "cleaned_samples") != samples:  # for the lab report; kept once per change
            store.put_result("stage2", "cleaned_samples", samples)
