"""The Chat page in a real browser (Debian Chromium, Playwright): type a request, watch the answer arrive in a chat
message, press the off-topic probe, switch to a fine-tuned model, stop a long answer half-way, and find the
conversation again after a reload.

One server, in demo mode (the chat is kept for the demo learner), its model a *tiny* Llama (tests/chat_models.py:
2 layers, 64 wide, SmolLM2's real tokenizer) and a LoRA adapter on it saved as a finished run: what is tested is
the page from the box to the store and back, the same at any size; SmolLM2 would take seconds per answer.
"""
from __future__ import annotations

import re
import sys

import pytest

from dashboard.logic import chat
from lessons.engine.store import Store
from tests.chat_models import finished_run, tiny_adapter, tiny_base
from tests.test_dashboard_browser import (CHROMIUM, address, error_boxes, open_browser,  # noqa: F401 - a fixture
                                          screenshots, serve_dashboard)
from tests.test_dashboard_walk import set_number

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="Chromium is not installed: apt-get install -y chromium chromium-driver"),
]
ANSWER_TOKENS = 30  # enough for several streamed pieces; the page's 300 would only make the busy test machine wait


@pytest.fixture
def chat_server(tmp_path):
    base = tiny_base(tmp_path / "tiny-model")
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"],
                               extra_env={"LAB_MODEL": str(base)})


def ask(page, request: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(request)
    box.press("Enter")


def answers(page):
    """The assistant's finished answers: each has its caption (model · why it stopped · tokens …)."""
    return page.get_by_test_id("stChatMessage").filter(has_text=re.compile(r"tokens in [\d.]+ s"))


def test_chat_streams_an_answer_probes_off_topic_switches_model_and_keeps_it_after_a_reload(chat_server, screenshots,
                                                                                             tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path, height=2400)
        page.goto(address(chat_server, "chat"))
        expect(page.get_by_role("heading", name="Chat with your model")).to_be_visible()
        expect(page.get_by_text("No fine-tuned model yet", exact=False)).to_be_visible()
        set_number(page, "Max new tokens", ANSWER_TOKENS)

        ask(page, "a quick tomato soup, please")
        expect(page.get_by_text("RECIPE: Quick tomato soup").first).to_be_visible()  # the prompt it became
        expect(answers(page)).to_have_count(1)
        expect(answers(page).first).to_contain_text("base · ")

        page.get_by_role("button", name="Off-topic probe").click()
        expect(page.get_by_test_id("stChatMessage").filter(has_text="What is Python?").first).to_be_visible()
        expect(answers(page)).to_have_count(2)

        # A run finishes (stage 4B): its model is listed on the next visit.
        with Store(tmp_path / "home" / "lab.sqlite", learner="demo") as store:
            finished_run(store, tiny_adapter(tmp_path / "adapter", tmp_path / "tiny-model"), run_id="chat-run")
        page.reload()
        expect(answers(page)).to_have_count(2)  # the conversation survived the reload
        set_number(page, "Max new tokens", ANSWER_TOKENS)
        page.get_by_test_id("stSelectbox").filter(has_text="Model").click()
        page.get_by_role("option", name="fine-tuned · run chat-run").click()
        ask(page, "banana pancakes")
        expect(answers(page)).to_have_count(3)
        expect(answers(page).last).to_contain_text("fine-tuned (chat-run)")

        # A long answer stopped half-way is kept, and says so.
        set_number(page, "Max new tokens", chat.MAX_NEW_TOKENS_LIMIT)
        ask(page, "beef stew")
        page.get_by_role("button", name="Stop the answer").click()
        expect(answers(page)).to_have_count(4)
        expect(answers(page).last).to_contain_text("stopped before the end")
        page.screenshot(path=str(screenshots / "chat.png"), full_page=True)
        assert not error_boxes(page).count(), error_boxes(page).all_inner_texts()

        page.reload()
        expect(answers(page)).to_have_count(4)
        page.get_by_role("button", name="Clear the chat").click()
        expect(answers(page)).to_have_count(0)
        assert not error_boxes(page).count(), error_boxes(page).all_inner_texts()
        browser.close()

    with Store(tmp_path / "home" / "lab.sqlite", learner="demo") as store:
        saved = chat.report_exchanges(store)
    assert [row["label"] for row in saved] == ["finetuned", "finetuned", "base", "base"]
    assert saved[0]["settings"]["new_tokens"] < chat.MAX_NEW_TOKENS_LIMIT
    assert saved[2]["prompt"] == "What is Python?\n"
    assert saved[3]["settings"]["request"] == "a quick tomato soup, please"
