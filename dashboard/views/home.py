"""Home: your progress across the eight stages, what to do next, and the success tiers."""
from __future__ import annotations

import streamlit as st

from dashboard.logic import lesson as lesson_logic
from dashboard.logic import tiers
from dashboard.logic.charts import checks_chart
from dashboard.ui import demo_mode, open_store, report_download_button
from lessons.engine.paths import relative_to_project
from lessons.engine.progress import PASSED, all_progress

store = open_store()
progress = all_progress(store)

st.title("🍳 LoRA Kitchen")
st.markdown("Fine-tune a small language model with LoRA until it writes recipes — one stage at a time. "
            "Each stage is a file you complete and a set of checks that tell you, like a teacher, what is "
            "still missing. A stage's page opens when the stage before it passes.")
st.caption(f"Learner: **{store.learner}** · store: `{relative_to_project(store.path)}`")
report_download_button("home_report")

# -- what to do next ---------------------------------------------------------------------
step = lesson_logic.next_step(progress)
st.subheader("What to do next")
if step.stage is None:
    st.success(step.text, icon="🎉")
else:
    st.markdown(f"**{step.text}** Open `{step.file}` in your editor, fill in its TODOs from the top, then run:")
    st.code(step.command, language="bash")
    st.caption(f"…or press “Run checks” on the stage {step.stage.label} page. "
               "`.venv/bin/python -m lessons progress` prints this table in a terminal.")

# -- progress --------------------------------------------------------------------------------
st.subheader("Your progress")
rows = []
for index, item in enumerate(progress):
    opened = demo_mode() or index == 0 or progress[index - 1].status == PASSED
    rows.append({"stage": item.stage.label, "topic": item.stage.title, "status": item.status,
                 "checks passed": f"{item.passed}/{item.total}" if item.total else "–",
                 "page": "open" if opened else "locked",
                 "file": relative_to_project(item.stage.learner_file)})
st.dataframe(rows, hide_index=True, width="stretch")
chart_rows = [{"stage": item.stage.label, "checks": count, "outcome": outcome}
              for item in progress
              for outcome, count in (("passed", item.passed), ("not passed yet", max(0, item.total - item.passed)))]
if any(item.total for item in progress):
    st.altair_chart(checks_chart(chart_rows, order=[item.stage.label for item in progress]), width="stretch")

# -- success tiers -----------------------------------------------------------------------------
st.subheader("Success tiers")
evidence = tiers.Evidence.from_store(store)
judgements = tiers.evaluate(evidence)
reached = tiers.tier_reached(judgements)
if reached:
    st.success(f"You have reached the **{reached}** tier.", icon="🏅")
else:
    st.info("No tier reached yet: the *complete* tier is the whole pipeline working on your own code.")
for tier in tiers.TIERS:
    mine = [j for j in judgements if j.criterion.tier == tier]
    met = sum(j.met for j in mine)
    with st.expander(f"{'✅' if met == len(mine) else '⬜'} {tier.capitalize()} — {met}/{len(mine)} criteria met",
                     expanded=tier == (tiers.TIERS[tiers.TIERS.index(reached) + 1]
                                       if reached and reached != tiers.TIERS[-1] else "complete" if not reached
                                       else None)):
        st.caption(tiers.TIER_BLURBS[tier])
        st.dataframe(tiers.tier_table(mine), hide_index=True, width="stretch")
st.caption("Runs made in demo mode, with the reference solutions, do not count: the evidence must be your own.")
