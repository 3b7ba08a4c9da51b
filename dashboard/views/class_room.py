"""Class (instructors only): who has done what, everyone's loss curves, perplexities, measures and favourites.

Read from the learners' stores only, read-only (``dashboard/logic/classroom.py``); no learner
code runs here. A learner who opens this address reads whose page it is and nothing else: the
check below runs before anything of the class is read.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import classroom
from lessons.engine.classroom import ClassError, account_name, active_class, class_folder_problem, is_instructor
from lessons.engine.stages import STAGES
from lessons.engine.verification import STATES

st.title("🧑‍🏫 Class")
try:
    config = active_class()
except ClassError as problem:
    st.error(str(problem), icon="🛑")
    st.stop()
if config is None:
    st.info("No class is set up: `LAB_CLASS_DIR` is not set for this dashboard.", icon="ℹ️")
    st.markdown(classroom.SETUP_TEXT)
    st.stop()
if not is_instructor(config):
    st.error(classroom.refusal(config, account_name()), icon="🔒")
    st.stop()

presenting = st.toggle("Presenting", key="class_presenting",
                       help="Large type and the full width, for a 1280×720 projector; the sidebar comes back "
                            "when you switch this off.")
if presenting:
    st.markdown(classroom.PRESENTING_CSS, unsafe_allow_html=True)
layout = classroom.PRESENTING if presenting else classroom.NORMAL
folder_problem = class_folder_problem(config)
if folder_problem:
    st.warning(f"The class folder {config.folder}: {folder_problem}. Learners cannot start until it is fixed: "
               f"run `python -m lessons class init {config.folder} --instructors {config.instructors}` again.")


# Always every REFRESH_SECONDS, not only while a run is going: a learner may start one at any moment, and a page
# that polled only during runs would never notice the first; reading the class's stores read-only takes well under 1 s.
@st.fragment(run_every=classroom.REFRESH_SECONDS)
def class_now() -> None:
    summaries = classroom.read_class(config)
    if not summaries:
        st.warning(f"No learner has started in `{config.folder}` yet: each learner's lab makes their folder there "
                   "the first time they open the dashboard or run a check.")
        st.markdown(classroom.SETUP_TEXT)
        return
    learners = [summary.learner for summary in summaries]
    busy = classroom.training_now(summaries)
    st.caption(f"Class folder `{config.folder}` · {len(summaries)} learners · {busy} with a run going · "
               f"read-only, no learner code runs here · refreshed every {classroom.REFRESH_SECONDS} s.")

    st.subheader("Progress")
    st.altair_chart(classroom.heat_map_chart(summaries, layout=layout), width="stretch")
    counts = classroom.counts_by_state(summaries)
    st.caption(" · ".join(f"{classroom.HEAT_MARKS[state]} {state}: {counts[state]}"
                          for state in classroom.HEAT_STATES if counts[state])
               + f" (cells of {len(summaries)} learners × {len(STAGES)} stages). Only "
               f"*{STATES[0]}* was re-checked by `class verify`; *{STATES[1]}* is the learner's own store's word.")
    problems = classroom.problem_rows(summaries)
    if problems:
        st.warning(f"{len(problems)} folder(s) not read: each is listed with why, and nothing in it is shown as "
                   "that learner's.")
        st.dataframe(problems, hide_index=True, width="stretch", height=38 + 35 * len(problems))

    st.subheader("Training loss, everyone")
    validation = st.toggle("Validation loss instead of training loss", key="class_validation")
    split = "validation" if validation else "train"
    losses = classroom.loss_rows(summaries, split=split)
    if losses:
        with_runs = [name for name in learners if name in {row["learner"] for row in losses}]
        highlight = st.selectbox("Highlight", with_runs, key="class_highlight",
                                 help="This learner's curve in red; everyone else's in grey.")
        st.altair_chart(classroom.loss_overlay_chart(losses, highlight=highlight, layout=layout, split=split),
                        width="stretch")
    else:
        st.caption(f"No {split} loss logged yet (stage 4B).")

    st.subheader("Perplexity before and after fine-tuning")
    perplexities = classroom.perplexity_rows(summaries)
    if perplexities:
        st.altair_chart(classroom.perplexity_chart(perplexities, learners=learners, layout=layout), width="stretch")
    else:
        st.caption("No perplexities recorded yet (stage 5).")

    st.subheader("Does it stop, does it copy?")
    measures = classroom.measure_rows(summaries)
    if measures:
        left, right = st.columns(2)
        left.altair_chart(classroom.measure_chart(measures, measure="stop rate (%)", learners=learners, layout=layout,
                                                  title="Stop rate: texts that ended at [END]"), width="stretch")
        right.altair_chart(classroom.measure_chart(measures, measure="memorised titles", learners=learners,
                                                   layout=layout, title="Memorised titles: copied from training"),
                           width="stretch")
    else:
        st.caption("No stop rates or memorised titles yet (the stage 5 evaluation measures them).")

    st.subheader("Blind evaluation and word overlap")
    pooled, bleu = classroom.class_win_rate(summaries), classroom.bleu_rows(summaries)
    left, right = st.columns(2)
    if pooled["ratings"]:
        left.markdown(f"**Class win rate of the fine-tuned model: {100 * pooled['win_rate']:.0f} %**, pooled over "
                      f"{pooled['ratings']} blind ratings from {pooled['learners']} learners (won "
                      f"{pooled['finetuned']}, lost {pooled['base']}, tied {pooled['tie']}; a tie counts as half a "
                      "win, 50 % is a coin flip).")
        left.altair_chart(classroom.measure_chart(classroom.win_rate_rows(summaries), measure="win rate (%)",
                                                  learners=learners, layout=layout,
                                                  title="Win rate: each learner's blind ratings"), width="stretch")
    else:
        left.caption("No blind ratings yet: on the stage 5 page, after an evaluation, a learner rates pairs A/B.")
    if bleu:
        right.markdown("BLEU of each learner's fine-tuned model against held-out recipes (word overlap, 0–100: "
                       "*sounds like* the real recipe, not *is* a good one).")
        right.altair_chart(classroom.measure_chart(bleu, measure="BLEU, fine-tuned", learners=learners,
                                                   layout=layout, title="BLEU against held-out recipes"),
                           width="stretch")
    else:
        right.caption("No BLEU yet (the stage 5 evaluation measures it).")

    st.subheader("Favourite sampling settings")
    favourites = classroom.favourite_rows(summaries)
    if favourites:
        kept = sum(row["learners"] for row in favourites)
        st.altair_chart(classroom.favourites_chart(favourites, layout=layout), width="stretch")
        st.caption(f"{kept} of {len(summaries)} learners kept a favourite on the stage 6 page.")
    else:
        st.caption("No favourite yet: on the stage 6 page, a learner presses “Keep these settings as my favourite”.")


class_now()
