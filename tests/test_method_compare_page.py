"""Stage 4B's "Full fine-tuning vs LoRA (vs QLoRA)", pressed in a real browser (Debian Chromium, Playwright).

One server in demo mode, one page: the form set small, the compare button pressed, and the real trainer runs
each method as a background job, one after the other; the page then shows the table, the chart and the
conclusion. The model is a *tiny* Llama (2 layers, 64 wide, the real tokenizer; ``lessons/engine/tiny.py``),
named by ``LAB_MODEL``: what is tested is the path from the button through the queue and the store back to
the page, the same at any size; SmolLM2 would take many minutes per method here.
"""
from __future__ import annotations

import sys

import pytest

from dashboard.logic.method_compare import methods_here
from tests.test_dashboard_browser import CHROMIUM, error_boxes, open_browser, screenshots, serve_dashboard  # noqa: F401
from tests.test_dashboard_walk import (RUN_LIMIT_MS, open_stage, page_is_sound, small_training_form,  # noqa: F401
                                       tiny_model)  # tiny_model: a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium chromium-driver"),
]


@pytest.fixture
def tiny_server(tmp_path, tiny_model):
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"],
                               extra_env={"LAB_MODEL": str(tiny_model)})


def test_the_compare_button_trains_each_method_and_shows_the_figures(tiny_server, screenshots, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    methods, _ = methods_here()
    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path, height=4200)
        open_stage(page, tiny_server, "stage4b")
        small_training_form(page, validate_every=3)
        page.get_by_role("button", name="Compare full fine-tuning and LoRA", exact=False).click()
        conclusion = page.get_by_text("LoRA trained", exact=False)
        expect(conclusion.or_(page.get_by_text("❌ failed", exact=False)).first).to_be_visible(
            timeout=len(methods) * RUN_LIMIT_MS)
        expect(conclusion).to_contain_text("What it saves is")
        table = page.get_by_test_id("stDataFrame").filter(has_text="held-out perplexity")
        expect(table).to_have_count(1)
        if "qlora" in methods:  # the last run: its row finishes after the conclusion may have appeared
            expect(page.get_by_text("QLoRA held the model in", exact=False)).to_be_visible(timeout=RUN_LIMIT_MS)
        expect(page.locator(".vega-embed").filter(has_text="held-out perplexity")).to_have_count(1)
        page_is_sound(page, "stage4b-compare", screenshots)
        browser.close()
