"""Stage 4A results: one batch, its loss as surprise per token, gradient norms by layer, one step.

Runs the learner's ``make_collator``, ``first_batch``, ``forward_loss``,
``loss_by_hand``, ``backward_and_inspect`` and ``one_step_report`` on the
real model in the worker process (``dashboard/tasks/stage4a.py``) — a fresh
copy loaded for this (training changes it), freed after. The results are saved
in the store and drawn from there, so a reload shows them without recomputing.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import bar_chart
from dashboard.logic.kernel import LessonRef
from dashboard.logic.stage_data import change, shown
from dashboard.tasks import stage4a as tasks
from dashboard.ui import LONG_LIMIT_S, earlier_ref, friendly, run_task
from lessons.engine.store import Store

BATCH_SIZE = 2    # two recipes: enough to show padding, light enough for a laptop CPU (a few seconds)
MAX_LENGTH = 128  # tokens per recipe for this demonstration (training uses 256)
LEARNING_RATE = 2e-4


def draw(ref: LessonRef, store: Store) -> None:
    saved = store.result("stage4a", "one_step")
    label = "Run one step on the real model" if not saved else "Run it again"
    st.caption(f"One batch of {BATCH_SIZE} recipes (at most {MAX_LENGTH} tokens each) through SmolLM2: forward, "
               "loss, backward, one AdamW step, then the loss again on that batch and on "
               f"{BATCH_SIZE} other recipes. The model is loaded first, so it takes a while on a CPU.")
    if st.button(label, key="stage4a_run"):
        with st.spinner("Forward, backward, one step …"):
            with friendly("running one training step with your functions"):
                saved = run_task(tasks.one_step, ref, earlier_ref("stage2"), batch_size=BATCH_SIZE,
                                 max_length=MAX_LENGTH, learning_rate=LEARNING_RATE, timeout_s=LONG_LIMIT_S,
                                 doing="running one training step with your functions")
                store.put_result("stage4a", "one_step", saved)
                store.put_result("stage4a", "gradients", saved["gradients"])
    if not saved:
        st.info(f"Press “{label}” to run one step with your functions; the results are kept in your store.")
        return

    columns = st.columns(4)
    columns[0].metric("Loss (forward_loss)", f"{saved['loss']:.3f}")
    columns[1].metric("Loss by hand", f"{saved['loss_by_hand']:.3f}",
                      help=f"averaged over {saved['counted']} real tokens")
    columns[2].metric("Perplexity", f"{saved['perplexity']:.1f}")
    columns[3].metric("Batch shape", " × ".join(str(n) for n in saved["shapes"].get("input_ids", [])))

    st.markdown("#### Surprise at each token of the first recipe")
    st.caption("−log p of the token that really came next: high where the model did not expect it.")
    st.altair_chart(bar_chart(saved["surprise"], x="position", y="surprise", sort=None,
                              title="Surprise (−log p) per token: the loss is its mean"), width="stretch")

    st.markdown("#### Gradient norms by layer")
    gradient_rows = stage_data.gradient_rows(saved["gradients"])
    st.altair_chart(bar_chart(gradient_rows, x="layer", y="gradient norm", horizontal=True,
                              sort=[row["layer"] for row in gradient_rows], height=max(200, 16 * len(gradient_rows)),
                              title=f"Total gradient norm {saved['gradients'].get('total_norm', 0):.3g}"),
                    width="stretch")

    st.markdown("#### One optimizer step")
    st.caption("The loss on the batch the step learned from, and on other recipes it never saw.")
    step = saved["step"]
    columns = st.columns(4)
    columns[0].metric("Loss before", shown(step.get("loss_before"), ".4f"))
    columns[1].metric("Loss after, same batch", shown(step.get("loss_after"), ".4f"),
                      delta=change(step.get("loss_before"), step.get("loss_after")), delta_color="inverse")
    columns[2].metric("Loss on other recipes, after", shown(step.get("other_after"), ".4f"),
                      delta=change(step.get("other_before"), step.get("other_after")), delta_color="inverse",
                      help=f"before the step: {shown(step.get('other_before'), '.4f')}")
    columns[3].metric("Largest relative weight change", shown(step.get("largest_relative_change"), ".2e"))
