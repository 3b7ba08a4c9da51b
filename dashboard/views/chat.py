"""Chat: ask the base or a fine-tuned model for a recipe and watch the answer arrive token by token.

Draws only; what it computes is ``dashboard.logic.chat``. The chat runs the engine's own
generation (no learner code) in this process, with the models behind ``st.cache_resource``:
the worker answers whole tasks, and a chat must show each word as it comes.
"""
from __future__ import annotations

import threading

import streamlit as st

from dashboard.logic import chat
from dashboard.logic.charts import bar_chart
from dashboard.ui import demo_mode, finetuned_choices, friendly, model_spec, open_results_store

PENDING_KEY = "chat_pending"  # a request a button asked for (the off-topic probe), answered on this run
# An Event, set once this session's latest answer is in the store: a click mid-answer starts the next run at once
# (Streamlit stops the running one), and that run waits for it before it reads the conversation.
SAVED_KEY = "chat_answer_saved"
SAVE_WAIT_S = 30.0  # the stopped answer ends at its next token and is saved; only a stalled machine takes longer
AVATARS = {chat.BASE_LABEL: "🤖", chat.FINETUNED_LABEL: "🧑‍🍳"}


@st.cache_resource(show_spinner="Loading the model for the chat …", max_entries=2)
def chat_model(adapter: str | None, base: str | None):
    """(model, tokenizer): the base model (``adapter`` None) or a run's; two kept, so switching back is instant."""
    return chat.load_chat_model(None if adapter is None else {"adapter": adapter, "model": base})


def ask_off_topic() -> None:
    st.session_state[PENDING_KEY] = (chat.OFF_TOPIC_QUESTION, chat.QUESTION)


def clear_chat() -> None:
    with open_results_store() as store:
        chat.clear_conversation(store)
    st.toast("The chat is cleared here; every answer stays in your lab report.", icon="🧹")


def draw_request(row_request: str, prompt: str) -> None:
    with st.chat_message("user"):
        st.markdown(chat.as_markdown(row_request))
        st.caption("What the model was given to continue:")
        st.code(prompt, language="text", wrap_lines=True)


def draw_history(rows: list[dict]) -> None:
    for row in rows:
        settings = row.get("settings") or {}
        kind = settings.get("kind", chat.RECIPE)
        draw_request(settings.get("request", row["prompt"]), row["prompt"])
        with st.chat_message("assistant", avatar=AVATARS.get(row["label"], "🤖")):
            st.markdown(chat.as_markdown(chat.shown_answer(row["prompt"], row["text"], kind)))
            st.caption(chat.answer_caption(row["model"], settings))


def answer_now(request: str, kind: str, *, run_id: str | None, model_name: str,
               settings: chat.ChatSettings) -> None:
    """Draw the request, stream the answer into a chat message, save it (also when the learner stops it)."""
    prompt = chat.prompt_for(request, kind)
    draw_request(request, prompt)
    label = chat.BASE_LABEL if run_id is None else chat.FINETUNED_LABEL
    with st.chat_message("assistant", avatar=AVATARS[label]):
        spec = model_spec(run_id)
        model, tokenizer = chat_model(None if spec is None else spec["adapter"],
                                      None if spec is None else spec.get("model"))
        stop = st.empty()
        stop.button("⏹ Stop the answer", key="chat_stop", help="Ends the answer where it is; what it wrote is kept.")
        placeholder = st.empty()
        placeholder.caption("Thinking …")
        # Opened before the answer starts: a stopped script may call Streamlit no more, and the answer is still saved.
        store, saved = open_results_store(), threading.Event()
        st.session_state[SAVED_KEY] = saved
        stream = chat.stream_reply(model, tokenizer, prompt, settings)
        pieces = iter(stream)
        try:
            text = ""
            for piece in pieces:
                text += piece
                placeholder.markdown(chat.as_markdown(chat.shown_answer(prompt, text, kind)) + " ▌")
        finally:
            pieces.close()  # a rerun mid-answer (the stop button, a page switch) stops the model too
            if stream.reply is not None:
                chat.save_exchange(store, stream.reply, request=request, prompt=prompt, label=label,
                                   model_name=model_name, settings=settings, kind=kind)
            store.close()
            saved.set()
        stop.empty()
        placeholder.markdown(chat.as_markdown(chat.shown_answer(prompt, stream.reply.text, kind)))
        reply = stream.reply
        st.caption(chat.answer_caption(model_name, {**vars(settings), "stop_reason": reply.stop_reason,
                                               "new_tokens": reply.new_tokens, "total_s": reply.total_s,
                                               "tokens_per_s": reply.tokens_per_s}))


st.title("💬 Chat with your model")
if demo_mode():
    st.info("Demo mode: the fine-tuned models are the reference solution's runs, and the chat is kept for the demo "
            "learner.", icon="🎓")
st.markdown(
    "Ask for a dish and watch the model write it, one token at a time. The model never saw a chat: it learned to "
    "continue text. So your request becomes the start of a recipe in the format of stage 2 — `RECIPE: <your dish>` "
    "and a new line with `INGREDIENTS:` — and the model goes on from there. A fine-tuned model has learned to "
    "close a recipe with `[END]`, which ends the answer; the base model usually runs on to the token limit. "
    "**Temperature** and **top-p** (stage 6) decide how adventurous each drawn token is.")

if SAVED_KEY in st.session_state:
    st.session_state[SAVED_KEY].wait(SAVE_WAIT_S)
with open_results_store() as store:
    runs = finetuned_choices(store)
    history = chat.exchanges(store)

choices = {"base model (not fine-tuned)": None}
choices.update({f"fine-tuned · run {run_id}": run_id for run_id in reversed(runs)})  # the newest run first
left, middle, right = st.columns([2, 1, 1])
with left:
    model_name = st.selectbox("Model", list(choices), key="chat_model",
                              help="The base model, or the LoRA adapter a finished training run saved on top of it.")
    if not runs:
        st.info("No fine-tuned model yet: start a training run on **stage 4B** and let it finish; its model then "
                "appears here.", icon="🧑‍🍳")
    kind = st.radio("Ask as", [chat.RECIPE, chat.QUESTION], horizontal=True, key="chat_kind",
                    format_func={chat.RECIPE: "a recipe (RECIPE: … INGREDIENTS:)",
                                 chat.QUESTION: "a plain question, as typed"}.get,
                    help="A plain question shows what the model does with words that are not a recipe.")
with middle:
    temperature = st.slider("Temperature", 0.05, 2.0, 0.8, step=0.05, key="chat_temperature",
                            help=chat.ChatSettings.__dataclass_fields__["temperature"].metadata["help"])
    top_p = st.slider("top-p", 0.05, 1.0, 0.9, step=0.05, key="chat_top_p",
                      help=chat.ChatSettings.__dataclass_fields__["top_p"].metadata["help"])
with right:
    max_new_tokens = st.number_input("Max new tokens", 1, chat.MAX_NEW_TOKENS_LIMIT, 300, step=10,
                                     key="chat_max_new_tokens",
                                     help=chat.ChatSettings.__dataclass_fields__["max_new_tokens"].metadata["help"])
    st.button("🧪 Off-topic probe: what is python?", key="chat_probe", on_click=ask_off_topic,
              help="Asks “What is Python?” as a plain question: does a fine-tuned model answer with a recipe?")
    st.button("🧹 Clear the chat", key="chat_clear", on_click=clear_chat, disabled=not history,
              help="Starts a fresh conversation here; the answers so far stay in the store and your lab report.")

draw_history(history)
typed = st.chat_input("Ask for a recipe, e.g. a quick tomato soup", key="chat_input")
pending = (typed, kind) if typed else st.session_state.pop(PENDING_KEY, None)
if pending:
    with friendly("answering in the chat"):
        run_id = choices[model_name]
        answer_now(pending[0], pending[1], run_id=run_id,
                   model_name="base" if run_id is None else f"fine-tuned ({run_id})",
                   settings=chat.ChatSettings(temperature=round(float(temperature), 2), top_p=round(float(top_p), 2),
                                              max_new_tokens=int(max_new_tokens)))

if history:
    with st.expander("📏 How long were the answers, and why did they stop?"):
        st.altair_chart(bar_chart(chat.speed_rows(history), x="answer", y="tokens", colour="stopped",
                                  title="Tokens per answer, coloured by why it stopped"), width="stretch")
        st.caption("An answer that reached [END] wrote a whole recipe and stopped by itself; one that hit the "
                   "limit would have gone on.")
