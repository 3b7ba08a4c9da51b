"""Stage 1 results: the model you loaded, a tokenizer explorer, and the "before" picture.

Everything here runs the learner's own functions, in the worker process
(``dashboard/tasks/stage1.py``): ``load_model_and_tokenizer`` (the model stays
loaded there), ``count_parameters``, ``show_tokens`` and ``generate_text``. The
"before" generations are saved in the store (``stage1``/``before``) and shown
from there, so stage 5 can put them next to the fine-tuned model's.
"""
from __future__ import annotations

import time

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import token_chart, token_chips_html
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import stage1 as tasks
from dashboard.ui import LOAD_LIMIT_S, friendly, run_task
from lessons.engine.store import Store

DEFAULT_TEXT = "RECIPE: Banana Pancakes\nINGREDIENTS: 2 ripe bananas; 1 egg; a pinch of cinnamon"
# Greedy and short, so the "before" picture is the same every time it is made and takes seconds on a CPU.
BEFORE_SETTINGS = {"max_new_tokens": 60, "temperature": 0.0, "top_p": 1.0, "seed": 0}


def draw(ref: LessonRef, store: Store) -> None:
    loaded = None
    with friendly("loading the model with load_model_and_tokenizer"):
        with st.spinner("Loading the model with your load_model_and_tokenizer …"):
            loaded = run_task(tasks.load_model, ref, timeout_s=LOAD_LIMIT_S,
                              doing="loading the model with load_model_and_tokenizer")
    if loaded is None:
        return

    st.markdown("#### The model")
    with friendly("counting parameters with count_parameters"):
        counts = run_task(tasks.count_parameters, ref, doing="counting parameters with count_parameters")
        columns = st.columns(3)
        columns[0].metric("Parameters", f"{counts['total']:,}")
        columns[1].metric("Trainable today", f"{counts['trainable']:,}")
        with friendly("picking a device with pick_device"):
            columns[2].metric("Device", run_task(tasks.pick_device, ref, doing="picking a device with pick_device"))

    st.markdown("#### Tokenizer explorer")
    st.caption("Type anything: the model never sees letters, only these token ids. "
               "A space is shown as ·, a new line as ↵, a piece of a character (an emoji takes three tokens) as "
               "its bytes, ⟨F0⟩; the same token always has the same colour.")
    text = st.text_area("Text to tokenize", value=DEFAULT_TEXT, key="stage1_text", height=90)
    with friendly("splitting your text with show_tokens"):
        tokens = run_task(tasks.show_tokens, ref, text, doing="splitting your text with show_tokens")
        words = len(text.split())
        st.markdown(f"**{len(tokens)} tokens** for {len(text)} characters and {words} words "
                    f"({len(tokens) / max(words, 1):.2f} tokens per word).")
        if tokens:
            st.altair_chart(token_chart(tokens[:120]), width="stretch")
            with st.expander("The same tokens as chips, and their ids"):
                st.html(token_chips_html(tokens))
                st.dataframe([{"#": i, "token": t["token"], "id": t["id"], "text": repr(t["text"])}
                              for i, t in enumerate(tokens)], hide_index=True)

    st.markdown("#### The “before” picture")
    st.caption("What the base model writes today for the start of a recipe. Stage 5 puts these next to the "
               "fine-tuned model's answers to the same prompts.")
    prompts = loaded["before_prompts"]
    if st.button("Generate the before picture" if not store.generations("stage1", "before")
                 else "Generate it again", key="stage1_generate_before"):
        with friendly("generating with generate_text"):
            progress = st.progress(0.0, text="Generating …")
            started = time.perf_counter()
            for number, prompt in enumerate(prompts, start=1):
                text_out = run_task(tasks.generate_text, ref, prompt, BEFORE_SETTINGS, timeout_s=LOAD_LIMIT_S,
                                    doing="generating with generate_text")
                store.save_generation("stage1", "before", loaded["model"], prompt, text_out,
                                      settings=BEFORE_SETTINGS)
                progress.progress(number / len(prompts), text=f"{number}/{len(prompts)} prompts")
            st.caption(f"Generated in {time.perf_counter() - started:.0f} s.")
    draw_before_picture(store)


def draw_before_picture(store: Store) -> None:
    """The newest saved 'before' generation for each prompt, from the store."""
    latest: dict[str, dict] = {}
    for generation in store.generations("stage1", "before"):
        latest[generation["prompt"]] = generation  # ordered by id: the newest wins
    if not latest:
        st.info("No “before” picture yet: press “Generate the before picture” above. On a 2-core CPU it takes "
                f"2 to 3 minutes: each prompt gets {BEFORE_SETTINGS['max_new_tokens']} new tokens, one at a time.")
        return
    for prompt, generation in latest.items():
        with st.container(border=True):
            st.markdown(f"**Prompt** `{prompt.splitlines()[0]}`")
            st.code(prompt + generation["text"], language="text", wrap_lines=True)
            st.caption(f"{stage_data.model_label(generation['model'])} · "
                       f"{stage_data.settings_text(generation['settings'])}")
