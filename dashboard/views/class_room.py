"""Class (instructor): everyone's progress, loss curves and perplexities, read from their stores only."""
from __future__ import annotations

import streamlit as st

from dashboard.logic import classroom
from dashboard.logic.charts import bar_chart, runs_loss_chart
from lessons.engine.paths import learner_id

st.title("🧑‍🏫 Class")
folder = classroom.class_dir()
if folder is None:
    st.info("No class is set up: `LAB_CLASS_DIR` is not set for this dashboard.", icon="ℹ️")
    st.markdown(classroom.SETUP_TEXT)
    st.stop()

st.caption(f"Class folder: `{folder}` · read-only: no learner code runs here.")
summaries = classroom.read_class(folder, viewer=learner_id())
if not summaries:
    st.warning(f"No learner has written to `{folder}` yet: each learner's lab creates "
               "`<learner>/lab.sqlite` there when they first run a check.")
    st.markdown(classroom.SETUP_TEXT)
    st.stop()

st.subheader(f"Progress of {len(summaries)} learners")
st.dataframe(classroom.progress_rows(summaries), hide_index=True, width="stretch")
for summary in summaries:
    if summary.error:
        st.warning(f"{summary.learner}: {summary.error}")

st.subheader("Training loss, everyone")
show_validation = st.toggle("Validation loss instead of training loss", key="class_validation")
losses = classroom.loss_rows(summaries, split="validation" if show_validation else "train")
if losses:
    st.altair_chart(runs_loss_chart(losses, colour="run",
                                    title="Validation loss by run" if show_validation else "Training loss by run"),
                    width="stretch")
else:
    st.caption("No training runs with metrics yet.")

st.subheader("Perplexity, everyone")
perplexities = classroom.perplexity_rows(summaries)
if perplexities:
    st.altair_chart(bar_chart(perplexities, x="learner", y="perplexity", colour="measure",
                              title="Perplexity on held-out recipes (lower is better)", grouped=True),
                    width="stretch")
else:
    st.caption("No perplexities recorded yet (stage 5).")
