"""Stage 6 results: the next-token distribution under temperature and top-p, your own generation loop, a sweep.

Runs the learner's ``apply_temperature``, ``top_p_filter``,
``next_token_distribution``, ``generate_custom_recipe`` and ``sampling_sweep``
in the worker process (``dashboard/tasks/stage6.py``), on the base model, and
on the fine-tuned model of the newest finished run when there is one (before
and after fine-tuning, side by side). The models stay loaded in the worker.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import classroom, stage_data
from dashboard.logic.charts import NEXT_TOKEN_BARS, bar_chart, next_token_chart, temperature_chart
from dashboard.logic.kernel import LessonRef
from dashboard.logic.stage_data import distribution_rows
from dashboard.tasks import stage6 as tasks
from dashboard.ui import LOAD_LIMIT_S, LONG_LIMIT_S, finetuned_choices, friendly, model_spec, run_task
from lessons.engine.store import Store

DEFAULT_PROMPT = "RECIPE: Banana Pancakes\nINGREDIENTS:"
TOY_LOGITS = [2.0, 1.0, 0.0]  # the lesson's own example: three tokens, scores 2, 1 and 0


def draw(ref: LessonRef, store: Store) -> None:
    st.markdown("#### Temperature on the lesson's example")
    temperature = st.slider("Temperature", 0.0, 2.0, 0.8, step=0.1, key="stage6_temperature",
                            help="0 = greedy: always the most probable token.")
    top_p = st.slider("top-p (nucleus)", 0.05, 1.0, 0.9, step=0.05, key="stage6_top_p")
    with friendly("reshaping the toy logits with apply_temperature and top_p_filter"):
        if temperature > 0:
            probabilities = run_task(tasks.toy, ref, TOY_LOGITS, temperature, top_p,
                                     doing="reshaping the toy logits with apply_temperature and top_p_filter")
        else:
            probabilities = [1.0 if i == TOY_LOGITS.index(max(TOY_LOGITS)) else 0.0 for i in range(len(TOY_LOGITS))]
        st.altair_chart(temperature_chart([{"token": f"token {i} · logit {v:g}", "probability": p}
                                           for i, (v, p) in enumerate(zip(TOY_LOGITS, probabilities))],
                                          title="The temperature chart: logits [2, 1, 0] after your functions",
                                          subtitle=f"temperature {temperature:g}, top-p {top_p:g}"),
                        width="stretch")

    st.markdown("#### The next token, for real")
    prompt = st.text_area("Prompt", DEFAULT_PROMPT, key="stage6_prompt", height=70)
    models = [("base", None)] + [(f"fine-tuned ({run_id})", run_id) for run_id in finetuned_choices(store)[-1:]]
    columns = st.columns(len(models))
    for column, (name, run_id) in zip(columns, models):
        with column, friendly(f"asking the {name} model with next_token_distribution"):
            distribution = run_task(tasks.distribution, ref, model_spec(run_id), prompt, temperature=temperature,
                                    top_p=top_p, k=12, timeout_s=LOAD_LIMIT_S,
                                    doing=f"asking the {name} model with next_token_distribution")
            rows = distribution_rows(distribution)
            st.altair_chart(next_token_chart(rows, title=f"{name.split(' ')[0]}: the {NEXT_TOKEN_BARS} most "
                                                         "probable next tokens"), width="stretch")
            kept = sum(bool(row.get("kept")) for row in distribution)
            pieces = " A token shown as ⟨C2⟩ is one byte of a character written with several tokens." \
                if any("⟨" in row["token"] for row in rows) else ""
            st.caption(f"{name}: {kept} of the 12 most probable tokens can still be drawn.{pieces}")

    st.markdown("#### Your generation loop")
    name = st.selectbox("Model", [name for name, _ in models], key="stage6_model")
    run_id = dict(models)[name]
    if st.button("Generate with generate_custom_recipe", key="stage6_generate"):
        with friendly("generating with generate_custom_recipe"):
            with st.spinner("Generating, one token at a time …"):
                text = run_task(tasks.custom_recipe, ref, model_spec(run_id), prompt,
                                {"max_new_tokens": 80, "temperature": temperature, "top_p": top_p, "seed": 0},
                                timeout_s=LOAD_LIMIT_S, doing="generating with generate_custom_recipe")
            store.save_generation("stage6", "custom", name, prompt, text,
                                  {"temperature": temperature, "top_p": top_p, "seed": 0})
    favourite = store.result(*classroom.FAVOURITE)
    for generation in store.generations("stage6", "custom")[-3:][::-1]:
        with st.container(border=True):
            st.caption(f"{stage_data.model_label(generation['model'])} · "
                       f"{stage_data.settings_text(generation['settings'])}")
            st.code(generation["prompt"] + generation["text"], language="text", wrap_lines=True)
            if classroom.is_favourite(generation, favourite):
                st.caption("⭐ Your favourite: in a class, your instructors see these settings on their Class page.")
            elif st.button("Keep these settings as my favourite", key=f"stage6_favourite_{generation['id']}"):
                store.put_result(*classroom.FAVOURITE, classroom.favourite_settings(generation))
                st.rerun()  # redraw every generation: the star moves to this one, the others get their button back

    st.markdown("#### A sweep over temperature and top-p")
    if st.button("Run the sweep (9 short generations)", key="stage6_sweep"):
        with friendly("sweeping with sampling_sweep"):
            with st.spinner("Sweeping …"):
                sweep = run_task(tasks.sweep, ref, model_spec(run_id), prompt,
                                 {"temperatures": (0.0, 0.8, 1.5), "top_ps": (0.5, 0.9, 1.0), "max_new_tokens": 40,
                                  "seed": 0}, timeout_s=LONG_LIMIT_S, doing="sweeping with sampling_sweep")
            store.put_result("stage6", "sweep", sweep)
    sweep = store.result("stage6", "sweep")
    if sweep:
        st.altair_chart(bar_chart([{"setting": f"T={row['temperature']} p={row['top_p']}",
                                    "repetition": float(row.get("repetition", 0.0))} for row in sweep],
                                  x="setting", y="repetition", sort=None,
                                  title="How much each text repeats itself (0 = never)"), width="stretch")
        st.dataframe([{"temperature": row["temperature"], "top_p": row["top_p"], "text": row["text"]}
                      for row in sweep], hide_index=True)
