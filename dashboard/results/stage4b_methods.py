"""Stage 4B, "Full fine-tuning vs LoRA (vs QLoRA)": one button trains the form's settings each way, then their
figures side by side. The logic is ``dashboard.logic.method_compare``; this only draws."""
from __future__ import annotations

import streamlit as st

from dashboard.logic import method_compare
from dashboard.ui import demo_mode, friendly
from lessons.engine.store import Store

COMPARE_BUTTON = "▶ Compare full fine-tuning and LoRA"


def draw(store: Store, settings, *, busy: bool) -> None:
    """The comparison part of the page: ``settings`` are the form's, ``busy`` while a run is going."""
    st.markdown("#### Full fine-tuning vs LoRA (vs QLoRA)")
    methods, qlora_reason = method_compare.methods_here()
    names = ", ".join(method_compare.LABELS[method] for method in methods)
    st.caption(f"The settings above, trained {len(methods)} ways ({names}): the same recipes, steps and "
               "evaluation. Full fine-tuning trains every weight, with its own, much smaller learning rate "
               f"({getattr(settings, 'full_learning_rate', 0):g}); each run ends by measuring its held-out "
               "perplexity and stop rate on its own validation recipes. The runs wait their turn in the queue.")
    if qlora_reason:
        st.info(f"QLoRA is left out on this machine: {qlora_reason}")
        gpu_run = method_compare.saved_gpu_qlora(store)
        if gpu_run:
            st.caption(f"A QLoRA run saved from a GPU ({gpu_run['device']}, run {gpu_run['run']}):")
            st.dataframe(method_compare.table_rows([gpu_run]), hide_index=True)
    label = COMPARE_BUTTON + (" and QLoRA" if "qlora" in methods else "")
    if st.button(label, key="stage4b_compare", disabled=busy,
                 help="One run at a time: wait for the running one, or cancel it." if busy else None):
        with friendly("queueing the comparison runs"):
            runs = method_compare.start_comparison(settings, reference=demo_mode(), store=store, methods=methods)
            st.session_state["stage4b_run"] = next(iter(runs.values()))
            st.toast(f"{len(runs)} runs queued: {', '.join(runs.values())}.")
            st.rerun()

    rows = method_compare.comparison_rows(store)
    if not rows:
        st.caption("No comparison yet.")
        return
    st.dataframe(method_compare.table_rows(rows), hide_index=True)
    kinds = {row["memory_kind"] for row in rows if row.get("memory_kind")}
    if kinds:
        st.caption("Peak memory: " + "; ".join(sorted(kinds)) + ".")
    with friendly("drawing the comparison"):
        chart = method_compare.comparison_chart(rows)
        if chart is not None:
            st.altair_chart(chart)
    sentence = method_compare.conclusion(rows)
    if sentence:
        st.success(sentence)
    else:
        waiting = [row["label"] for row in rows if row["status"] != "finished"]
        st.caption("The conclusion comes when LoRA and full fine-tuning have both finished"
                   + (f" (waiting for: {', '.join(waiting)})." if waiting else "."))
