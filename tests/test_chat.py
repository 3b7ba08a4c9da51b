"""The chat's logic (dashboard/logic/chat.py): prompts, settings refused in words, the answer streamed, stopped
at [END] or at the token limit, and the conversation kept in the store.

The models are tiny (lessons/engine/tiny.py, SmolLM2's real tokenizer, 2 layers 64 wide): streaming and stopping
are the same at any size, and SmolLM2 would make each answer seconds instead of milliseconds. Where a test needs
the model to write something on purpose ([END], the end-of-text token) a hook on its output head makes that
token the most probable at a chosen step, as a trained model would.
"""
from __future__ import annotations

import threading
import time

import pytest

from dashboard.logic import chat
from dashboard.logic.chat import ChatError, ChatSettings
from lessons.engine.constants import END_MARKER
from lessons.engine.store import Store
from lessons.engine.tiny import lively_llama, real_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return real_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return lively_llama(tokenizer, seed=0)


def force_tokens(model, tokens_at_step: dict[int, int]):
    """Make ``tokens_at_step[n]`` by far the most probable token at generation step n; returns the hook to remove."""
    calls = {"n": 0}

    def boost(module, inputs, output):
        step = calls["n"]
        calls["n"] += 1
        if step in tokens_at_step:
            output = output.clone()
            output[:, -1, tokens_at_step[step]] += 1_000.0
        return output

    return model.lm_head.register_forward_hook(boost)


def slow_down(model, seconds: float):
    """Each forward pass waits ``seconds`` first, as a real model on a CPU takes time per token."""
    return model.register_forward_pre_hook(lambda module, args: time.sleep(seconds))


# -- the prompt -------------------------------------------------------------------------------------
@pytest.mark.parametrize("request_text, title", [
    ("tomato soup", "Tomato soup"),
    ("Give me a recipe for banana pancakes!", "Banana pancakes"),
    ("could you please write a recipe for lentil curry, please", "Lentil curry"),
    ("I want   a quick\nomelette?", "Quick omelette"),
    ("recipe", "Recipe"),  # nothing left after the opening: the words themselves
])
def test_a_request_becomes_the_title_of_a_recipe_prompt_in_stage2s_format(request_text, title):
    assert chat.recipe_prompt(request_text) == f"RECIPE: {title}\nINGREDIENTS:"


def test_the_off_topic_probe_is_asked_as_it_is_and_an_empty_request_is_refused_in_words():
    assert chat.prompt_for(chat.OFF_TOPIC_QUESTION, chat.QUESTION) == "What is Python?\n"
    for kind in (chat.RECIPE, chat.QUESTION):
        with pytest.raises(ChatError, match="Type"):
            chat.prompt_for("  \n ", kind)


@pytest.mark.parametrize("fields, words", [
    ({"temperature": 0}, "temperature must be above 0"),
    ({"temperature": -0.5}, "temperature must be above 0"),
    ({"top_p": 0}, "top-p must be above 0 and at most 1"),
    ({"top_p": 1.2}, "top-p must be above 0 and at most 1"),
    ({"max_new_tokens": 0}, "max new tokens must be a whole number from 1 to 600"),
    ({"max_new_tokens": 10_000}, "max new tokens must be a whole number from 1 to 600"),
])
def test_bad_settings_are_refused_with_what_to_change(fields, words):
    with pytest.raises(ChatError, match=words):
        ChatSettings(**fields)


# -- the answer, streamed ----------------------------------------------------------------------------
def test_the_answer_streams_in_pieces_while_the_model_is_still_writing_and_they_join_to_the_reply(model, tokenizer):
    hook = slow_down(model, 0.02)
    try:
        stream = chat.stream_reply(model, tokenizer, chat.recipe_prompt("pancakes"),
                                   ChatSettings(max_new_tokens=40, seed=1))
        pieces, still_writing = [], []
        for piece in stream:
            pieces.append(piece)
            still_writing.append(stream._thread.is_alive())
    finally:
        hook.remove()
    reply = stream.reply
    assert len(pieces) >= 3, pieces
    assert still_writing[0], "the first piece came only after the whole answer was written"
    assert "".join(pieces) == reply.text
    assert reply.pieces == len(pieces)
    assert 0 < reply.first_piece_s < reply.total_s


def test_the_token_limit_holds_and_is_named(model, tokenizer):
    reply = chat.answer(model, tokenizer, chat.recipe_prompt("pancakes"), ChatSettings(max_new_tokens=7, seed=2))
    assert reply.new_tokens == 7
    assert reply.stop_reason == "hit the 7-token limit"


def test_it_stops_at_end_when_end_is_one_token_of_the_tokenizer(tokenizer):
    with_end = real_tokenizer()
    with_end.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    model = lively_llama(with_end, seed=0)  # one row per token, [END] included, as stage 3 makes it
    end_id = with_end.convert_tokens_to_ids(END_MARKER)
    hook = force_tokens(model, {5: end_id})
    try:
        reply = chat.answer(model, with_end, chat.recipe_prompt("soup"), ChatSettings(max_new_tokens=50, seed=0))
    finally:
        hook.remove()
    assert reply.text.endswith(END_MARKER) and reply.text.count(END_MARKER) == 1
    assert reply.stop_reason == "reached [END]"
    assert reply.new_tokens == 6


def test_it_stops_at_end_written_as_several_tokens_and_shows_nothing_after_it(model, tokenizer):
    pieces = tokenizer(END_MARKER + " more", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 2  # the base tokenizer has no [END] token: it is spelled out
    hook = force_tokens(model, {4 + number: token for number, token in enumerate(pieces)})
    try:
        reply = chat.answer(model, tokenizer, chat.recipe_prompt("soup"), ChatSettings(max_new_tokens=60, seed=0))
    finally:
        hook.remove()
    assert reply.text.endswith(END_MARKER), reply.text
    assert reply.stop_reason == "reached [END]"
    assert reply.new_tokens < 60


def test_the_end_of_text_token_ends_the_answer_and_is_not_shown(model, tokenizer):
    hook = force_tokens(model, {3: tokenizer.eos_token_id})
    try:
        reply = chat.answer(model, tokenizer, chat.recipe_prompt("soup"), ChatSettings(max_new_tokens=60, seed=0))
    finally:
        hook.remove()
    assert reply.stop_reason == "wrote its end-of-text token"
    assert reply.new_tokens == 4
    assert tokenizer.eos_token not in reply.text


def test_the_same_seed_gives_the_same_answer_and_temperature_changes_it(model, tokenizer):
    prompt = chat.recipe_prompt("bread")
    first = chat.answer(model, tokenizer, prompt, ChatSettings(max_new_tokens=20, seed=3))
    again = chat.answer(model, tokenizer, prompt, ChatSettings(max_new_tokens=20, seed=3))
    hot = chat.answer(model, tokenizer, prompt, ChatSettings(max_new_tokens=20, seed=3, temperature=2.0, top_p=1.0))
    assert first.text == again.text
    assert hot.text != first.text


def test_leaving_an_answer_early_stops_the_model(model, tokenizer):
    hook = slow_down(model, 0.02)
    try:
        stream = chat.stream_reply(model, tokenizer, chat.recipe_prompt("stew"), ChatSettings(max_new_tokens=300))
        pieces = iter(stream)
        next(pieces)
        started = time.perf_counter()
        pieces.close()  # what a page does when the learner leaves mid-answer
        stopped_in = time.perf_counter() - started
    finally:
        hook.remove()
    assert not stream._thread.is_alive()
    assert stopped_in < 2.0  # 300 tokens at 20 ms would take 6 s more
    assert stream._output.shape[1] - stream._inputs["input_ids"].shape[1] < 300
    assert stream.reply.stop_reason == "stopped before the end"  # what it wrote is kept, and says so
    assert stream.reply.text and stream.reply.new_tokens < 300


def test_two_answers_at_once_each_finish_whole(model, tokenizer):
    replies = {}

    def ask(name):
        replies[name] = chat.answer(model, tokenizer, chat.recipe_prompt(name), ChatSettings(max_new_tokens=10,
                                                                                           seed=4))

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("soup", "salad")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {reply.new_tokens for reply in replies.values()} == {10}


# -- the models -----------------------------------------------------------------------------------------
def test_the_chat_loads_the_base_model_and_a_runs_fine_tuned_one(tmp_path, monkeypatch):
    from tests.chat_models import tiny_adapter, tiny_base

    base = tiny_base(tmp_path / "base")
    monkeypatch.setenv("LAB_MODEL", str(base))
    model, tokenizer = chat.load_chat_model(None)
    assert END_MARKER not in tokenizer.get_vocab()
    assert str(next(model.parameters()).device) == chat.chat_device()
    adapter = tiny_adapter(tmp_path / "adapter", base)
    tuned, tuned_tokenizer = chat.load_chat_model({"run": "r1", "adapter": str(adapter), "model": None})
    assert END_MARKER in tuned_tokenizer.get_vocab()
    assert hasattr(tuned, "peft_config")
    reply = chat.answer(tuned, tuned_tokenizer, chat.recipe_prompt("soup"), ChatSettings(max_new_tokens=5, seed=0))
    assert reply.new_tokens <= 5


# -- the conversation in the store ------------------------------------------------------------------------
def saved(store: Store, request: str, label: str = chat.BASE_LABEL) -> None:
    reply = chat.Reply(text=f"answer to {request}", stop_reason="reached [END]", new_tokens=12, first_piece_s=0.1,
                       total_s=0.5, pieces=4)
    chat.save_exchange(store, reply, request=request, prompt=chat.recipe_prompt(request), label=label,
                       model_name="base" if label == chat.BASE_LABEL else "fine-tuned (r1)",
                       settings=ChatSettings(temperature=0.7, top_p=0.95, max_new_tokens=100))


def test_answers_are_saved_with_settings_and_clearing_hides_them_from_the_page_but_not_the_report(tmp_path):
    with Store(tmp_path / "lab.sqlite", learner="me") as store:
        saved(store, "soup")
        saved(store, "salad", chat.FINETUNED_LABEL)
        rows = chat.exchanges(store)
        assert [row["settings"]["request"] for row in rows] == ["soup", "salad"]
        assert rows[1]["label"] == "finetuned" and rows[1]["prompt"] == "RECIPE: Salad\nINGREDIENTS:"
        assert rows[0]["settings"]["temperature"] == 0.7 and rows[0]["settings"]["stop_reason"] == "reached [END]"
        assert rows[0]["settings"]["tokens_per_s"] == 24.0

        chat.clear_conversation(store)
        assert chat.exchanges(store) == []
        saved(store, "bread")
        assert [row["settings"]["request"] for row in chat.exchanges(store)] == ["bread"]
        assert [row["settings"]["request"] for row in chat.report_exchanges(store)] == ["bread", "salad", "soup"]
        assert len(chat.report_exchanges(store, limit=2)) == 2
        assert [row["tokens"] for row in chat.speed_rows(chat.exchanges(store))] == [12]


@pytest.mark.parametrize("text, shown", [
    ("RECIPE: *Toast*\nINGREDIENTS: 2 slices", "RECIPE: \\*Toast\\*  \nINGREDIENTS: 2 slices"),
    ("# 1. [END] costs $5", "\\# 1\\. \\[END\\] costs \\$5"),
])
def test_an_answer_is_shown_as_written_not_as_markdown(text, shown):
    assert chat.as_markdown(text) == shown


def test_the_lab_report_has_the_chat_newest_first_cleared_answers_included_escaped_and_capped(tmp_path):
    from dashboard.logic.report import NOT_DONE, build_report_html

    with Store(tmp_path / "lab.sqlite", learner="me") as store:
        assert "A conversation with your model (Chat page)" in build_report_html(store)
        saved(store, "soup")
        chat.clear_conversation(store)
        saved(store, "<script>alert(1)</script> cake", chat.FINETUNED_LABEL)
        page = build_report_html(store)
        section = page[page.index('<section id="chat">'):]
        section = section[: section.index("</section>")]
        assert "<h2>Chat</h2>" in section and NOT_DONE not in section
        assert section.index("fine-tuned (r1)") < section.index("answer to soup")  # newest first, cleared kept
        assert "RECIPE: Soup\nINGREDIENTS:answer to soup" in section  # the recipe as the model continued it
        assert "temperature 0.7, top-p 0.95, limit 100" in section and "reached [END]" in section
        assert "<script>" not in section and "&lt;script&gt;alert(1)&lt;/script&gt; cake" in section
        for number in range(chat.REPORT_EXCHANGES):
            saved(store, f"dish {number}")
        section = build_report_html(store).split('<section id="chat">')[1].split("</section>")[0]
        assert f"{chat.REPORT_EXCHANGES} of your {chat.REPORT_EXCHANGES + 2} chat answer(s)" in section
        assert "answer to soup" not in section
