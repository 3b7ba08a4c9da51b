"""Stage 7 results: your own file loaded, its mess before and after cleaning, the template, the split.

Runs the learner's ``load_own_dataset``, ``clean_examples``, ``format_example``,
``prompt_for``, ``prepare_own_splits`` and ``comparison_prompts`` in the worker
process (``dashboard/tasks/stage7.py``). A file can be
one of the examples in ``data/own_dataset/`` or one the learner uploads (kept
under the lab's home, ``uploads/``).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.logic.charts import bar_chart
from dashboard.logic.kernel import LessonRef
from dashboard.logic.own_dataset import (UPLOAD_TYPES, cleaning_rows, dataset_choices, dataset_label,
                                         shortest_keeping_all)
from dashboard.logic.tiers import is_own_dataset_run
from dashboard.tasks import shared, stage7 as tasks
from dashboard.ui import LOAD_LIMIT_S, demo_mode, finetuned_choices, friendly, model_spec, run_task
from lessons.engine import jobs
from lessons.engine.limits import LIMITS
from lessons.engine.paths import lab_home
from lessons.engine.store import Store

def draw(ref: LessonRef, store: Store) -> None:
    st.markdown("#### Your file")
    upload = st.file_uploader("Upload your own dataset (CSV, JSON or JSON Lines, UTF-8)", type=list(UPLOAD_TYPES),
                              key="stage7_upload")
    if upload is not None and st.session_state.get("stage7_upload_id") != upload.file_id:
        st.session_state["stage7_upload_id"] = upload.file_id  # each upload is saved once, not on every rerun
        saved = save_upload(upload.name, upload.getvalue())
        if saved is not None:
            st.session_state["stage7_dataset"] = str(saved)  # the box below shows the file just uploaded
    choices = dataset_choices()
    if not choices:
        st.info("No dataset yet: upload one above.")
        return
    names = [str(path) for path in choices]
    if st.session_state.get("stage7_dataset") not in names:
        st.session_state["stage7_dataset"] = names[0]
    path = Path(st.selectbox("Dataset", names, format_func=dataset_label, key="stage7_dataset"))

    loaded = {"count": 0}
    with friendly(f"loading {path.name} with load_own_dataset"):
        loaded = run_task(tasks.load, ref, str(path), timeout_s=LOAD_LIMIT_S,
                          doing=f"loading {path.name} with load_own_dataset")
    if not loaded["count"]:
        return
    columns = loaded["columns"]
    st.caption(f"{loaded['count']} rows; columns: {', '.join(columns)}")

    # One template box per file: a new file gets the template proposed for its own columns.
    template = st.text_area("Template (each {field} is a column; end with [END])", value=loaded["template"],
                            key=f"stage7_template:{path}",
                            height=max(90, 28 * (loaded["template"].count("\n") + 2)))  # [END] in sight
    fields: list[str] | None = None
    with friendly("checking the file's columns against the template"):  # before anything is cleaned or saved
        fields = run_task(tasks.template_columns, ref, str(path), template,
                          doing="reading the template's fields with template_fields") or columns
    if fields is None:
        return

    st.markdown("#### The mess, before and after cleaning")
    min_chars = int(st.number_input(
        "Shortest field kept (characters): clean_examples's min_chars", 1, 1000, loaded["min_chars"],
        key=f"stage7_min_chars:{path}",
        help="A row whose shortest template field is shorter than this is removed as too short. "
             "A recipe title can be one short word: lower it for such columns."))
    cleaned = {"count": 0}
    with friendly("cleaning with clean_examples"):
        cleaned = run_task(tasks.clean, ref, str(path), fields, min_chars, timeout_s=LOAD_LIMIT_S,
                           doing="cleaning with clean_examples")
        report = cleaned["report"]
        summary = st.columns(3)
        summary[0].metric("Rows in", report.get("rows_in", loaded["count"]))
        summary[1].metric("Rows kept", report.get("rows_out", cleaned["count"]))
        summary[2].metric("Removed", report.get("rows_in", loaded["count"]) - report.get("rows_out", cleaned["count"]))
        st.altair_chart(bar_chart(cleaning_rows(report), x="step", y="rows", colour="kind", horizontal=True,
                                  title="What clean_examples repaired and removed"), width="stretch")
        draw_removed(ref, path, fields, min_chars, report)
        examples = report.get("examples") or {}
        with st.expander("Examples of each repair and removal"):
            for name, items in examples.items():
                if items:
                    st.markdown(f"**{name.replace('_', ' ')}**")
                    st.dataframe([{key: str(value) for key, value in item.items()} for item in items],
                                 hide_index=True)
        if store.result("stage7", "cleaning_report") != report:
            store.put_result("stage7", "cleaning_report", report)
    if not cleaned["count"]:
        return

    st.markdown("#### Formatted for training")
    with friendly("formatting with format_example and prompt_for"):
        first = run_task(tasks.formatted, ref, str(path), fields, template, min_chars,
                         doing="formatting with format_example and prompt_for")
        st.code(first["text"], language="text", wrap_lines=True)
        st.caption("The prompt the model will be given for this row (the template cut before its last field):")
        st.code(first["prompt"], language="text", wrap_lines=True)
    with friendly("splitting with prepare_own_splits"):
        splits = run_task(tasks.splits, ref, str(path), fields, template, min_chars, timeout_s=LOAD_LIMIT_S,
                          doing="splitting with prepare_own_splits")
        columns = st.columns(2)
        columns[0].metric("Train", splits["train"])
        columns[1].metric("Validation", splits["validation"])
    with friendly("choosing prompts with comparison_prompts"):
        prompts = run_task(tasks.comparison_prompts, ref, str(path), fields, template, min_chars,
                           doing="choosing prompts with comparison_prompts")
        st.markdown("#### Prompts to compare the base, recipe and your own model on")
        st.dataframe([{"kind": p["kind"], "prompt": p["prompt"], "expected": p.get("expected", "")} for p in prompts],
                     hide_index=True)
        draw_training(store, path, template, fields, min_chars)
        draw_comparison(store, prompts)


def save_upload(name: str, data: bytes) -> Path | None:
    """Keep an uploaded file under the lab's home, ``uploads/``; one past the size limit is refused, unsaved."""
    if len(data) > LIMITS.own_dataset_max_bytes:
        st.error(f"{Path(name).name} is {len(data):,} bytes: the limit is {LIMITS.own_dataset_max_bytes:,} "
                 "(own_dataset_max_bytes in lessons/engine/limits.py). It was not saved.")
        return None
    folder = lab_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(name).name
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.replace(target)  # all or nothing: a reader never sees half a file
    return target


def draw_removed(ref: LessonRef, path: Path, fields: list[str], min_chars: int, report: dict) -> None:
    """Which rows were removed as blank or too short, their shortest field, and the min_chars that keeps them."""
    removed_count = sum((report.get("removed") or {}).get(reason, 0) for reason in ("blank", "too_short"))
    if not removed_count:
        return
    with friendly("listing the removed rows with clean_examples"):
        removed = run_task(tasks.removed_blank_or_short, ref, str(path), fields, min_chars, timeout_s=LOAD_LIMIT_S,
                           doing="listing the removed rows with clean_examples")
        keep_all = shortest_keeping_all(removed)
        short = [row for row in removed if row["reason"] == "too_short"]
        if short:
            fields_named = sorted({row["field"] for row in short})
            st.warning(f"{len(short)} rows removed as too short (shortest field under {min_chars} characters), "
                       f"mostly in: {', '.join(fields_named)}. With the shortest field kept at {keep_all}, "
                       "they would stay; is that text long enough to teach the model something?")
        st.dataframe(removed, hide_index=True, column_config={
            "row": "row (1 = first data row)", "reason": "why removed", "field": "shortest field",
            "shortest": "its characters", "text": "the row's fields"})


def draw_training(store: Store, path: Path, template: str, fields: list[str], min_chars: int) -> None:
    """The same LoRA run as stage 4B, on this file: a few settings, Start, the live view."""
    from dashboard.results.stage4b import training_settings_class, watch

    st.markdown("#### Train on your dataset")
    st.caption("The same pipeline as the recipes: stage 3 tokenizes your texts, stage 4B trains a LoRA adapter. "
               "A few dozen examples learn the format in a few dozen steps.")
    columns = st.columns(4)
    rank = columns[0].select_slider("LoRA rank r", [2, 4, 8, 16, 32], value=8, key="stage7_rank")
    max_steps = columns[1].number_input("Steps", 5, 2000, 60, key="stage7_max_steps")
    rates = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3]
    lab_rate = getattr(training_settings_class()(), "learning_rate", 2e-4)  # the lab's measured default
    nearest = min(rates, key=lambda lr: abs(lr - lab_rate))
    learning_rate = columns[2].select_slider("Learning rate", rates, value=nearest, key="stage7_learning_rate",
                                             format_func=lambda lr: f"{lr:g}")
    max_length = columns[3].select_slider("Max length", [64, 128, 256], value=128, key="stage7_max_length")
    active = jobs.newest_active_run(store)
    if st.button("▶ Train on this file", key="stage7_start", type="primary", disabled=active is not None):
        with friendly("starting the training run"):
            settings = training_settings_class()(rank=int(rank), alpha=2 * int(rank), max_steps=int(max_steps),
                                                 learning_rate=float(learning_rate), max_length=int(max_length),
                                                 test_size=0.2, eval_every=max(5, int(max_steps) // 6),
                                                 source=str(path))
            run_id = jobs.start_job(settings, reference=demo_mode(), store=store, name=f"stage7 {path.name}",
                                    own_dataset={"path": str(path), "template": template, "text_fields": fields,
                                                 "min_chars": min_chars})
            st.session_state["stage7_run"] = run_id
            st.rerun()
    watch(store, active, prefix="stage7", which=is_own_dataset_run)


def draw_comparison(store: Store, prompts: list[dict]) -> None:
    """The base model, the newest recipe model and the newest own-data model on the same prompts."""
    runs = {run["id"]: run for run in store.runs("train")}
    finished = finetuned_choices(store)
    recipe = next((r for r in reversed(finished) if not is_own_dataset_run(runs[r])), None)
    own = next((r for r in reversed(finished) if is_own_dataset_run(runs[r])), None)
    st.markdown("#### Base, recipe model, your model")
    if own is None:
        st.info("Once a run on your file has finished, compare it here with the base and the recipe model.")
        return
    models = [("base", None)] + ([("recipe model", recipe)] if recipe else []) + [("your model", own)]
    if st.button("Compare them on these prompts", key="stage7_compare"):
        with friendly("generating with the three models"):
            rows = []
            with st.spinner("Generating …"):
                for prompt in prompts:
                    row = {"prompt": prompt["prompt"], "expected": prompt.get("expected", "")}
                    for name, run_id in models:
                        row[name] = run_task(shared.generate_until_end, model_spec(run_id), prompt["prompt"],
                                             max_new_tokens=80, timeout_s=LOAD_LIMIT_S,
                                             doing=f"generating with the {name}")
                        store.save_generation("stage7", name, run_id or "base", prompt["prompt"], row[name])
                    rows.append(row)
            store.put_result("stage7", "comparison", rows)
    rows = store.result("stage7", "comparison")
    if rows:
        st.dataframe(rows, hide_index=True)
