"""Every page's main action, pressed in a real browser (Debian Chromium, Playwright), as an instructor in demo mode.

One server, one browser, the pages in lesson order: stage 1's before picture, 2 and 3's
charts, 4A's one step, a 4B training run to the end, 5's evaluation of that run and one
blind rating, 6's generation and sweep, 7's upload, clean and training on the uploaded
file, then the Experiments page with those runs and a Chat answer from the 4B run's
model. The walk
fails on any error box, exception, or chart drawn without marks, and saves a screenshot
of every page under the test's folder (or ``$LAB_SCREENSHOTS``).

The lab's model is a *tiny* Llama (2 layers, 64 wide, SmolLM2's real tokenizer;
``lessons/engine/tiny.py``), named by ``LAB_MODEL``: what is tested is that each button
works from the page to the store and back, which is the same at any size; SmolLM2
would make a training run and an evaluation take many minutes here, the tiny model
seconds.

Then the same server without demo mode, as a learner with a fresh store: every page but
stage 1 is locked and names stage 1; a complete passing check run of stage 1 opens stage 2.
"""
from __future__ import annotations

import re
import sys

import pytest

from lessons.engine.stages import STAGES, STAGES_BY_KEY, file_hash
from lessons.engine.store import Store
from lessons.engine.tiny import real_tokenizer, tiny_llama
from tests.test_dashboard_browser import (CHROMIUM, address, error_boxes, open_browser,  # noqa: F401 - a fixture
                                          screenshots, serve_dashboard)
from tests.test_own_dataset_page import recipes_csv

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium chromium-driver"),
]
RUN_LIMIT_MS = 600_000   # a training run or an evaluation, with the job's start-up, on a busy 2-core machine


@pytest.fixture
def tiny_model(tmp_path):
    folder = tmp_path / "tiny-model"
    tokenizer = real_tokenizer()
    tiny_llama(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_server(tmp_path, tiny_model):
    """The dashboard in demo mode, its model the tiny one."""
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"],
                               extra_env={"LAB_MODEL": str(tiny_model)})


def charts_without_marks(page) -> list[str]:
    """The titles (or first words) of every drawn chart that has no mark in it: a chart that says nothing."""
    empty = []
    for chart in page.locator(".vega-embed").all():
        if not chart.locator(".role-mark > *").count():
            empty.append(chart.inner_text()[:80] or "(a chart with no text)")
    return empty


def page_is_sound(page, name: str, screenshots) -> None:
    """No red box, no exception, no empty chart; a screenshot of the whole page."""
    page.wait_for_timeout(500)  # a rerun's last elements
    page.screenshot(path=str(screenshots / f"walk-{name}.png"), full_page=True)
    assert not error_boxes(page).count(), (name, error_boxes(page).all_inner_texts())
    assert not page.get_by_text(re.compile(r"Traceback \(most recent call last\)")).count(), name
    assert not charts_without_marks(page), (name, charts_without_marks(page))


def open_stage(page, server: str, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(address(server, key))
    expect(page.get_by_role("heading", name=f"Stage {STAGES_BY_KEY[key].label}", exact=False).first).to_be_visible()
    expect(page.get_by_text("Running...", exact=False)).to_have_count(0)  # the first run of the page is done


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(300)


def slide_to_start(page, label: str) -> None:
    """A select slider to its first (smallest) option, from the keyboard as a person can."""
    page.get_by_role("slider", name=label).first.focus()
    page.keyboard.press("Home")
    page.wait_for_timeout(300)


def small_training_form(page, *, validate_every: int) -> None:
    """Stage 4B's form at its smallest: the fewest recipes, 3 steps, the shortest length."""
    slide_to_start(page, "Data size (recipes)")
    page.get_by_text("More settings", exact=True).click()
    set_number(page, "Max steps (0 = all epochs)", 3)
    set_number(page, "Validate every (steps)", validate_every)
    slide_to_start(page, "Max length")


def test_every_page_main_action_in_demo_mode_on_a_tiny_model(tiny_server, screenshots, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    server = tiny_server
    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path, height=3600)

        open_stage(page, server, "stage1")
        page.get_by_role("button", name="Generate the before picture").click()
        expect(page.get_by_text("Generated in", exact=False).or_(error_boxes(page)).first).to_be_visible()
        expect(page.get_by_text("Prompt", exact=True)).to_have_count(3)  # one before-picture box per prompt
        page_is_sound(page, "stage1", screenshots)

        for key in ("stage2", "stage3"):
            open_stage(page, server, key)
            expect(page.locator(".vega-embed").first).to_be_visible()
            page_is_sound(page, key, screenshots)

        open_stage(page, server, "stage4a")
        page.get_by_role("button", name="Run one step on the real model").click()
        expect(page.get_by_text("Loss after, same batch", exact=True).or_(error_boxes(page)).first).to_be_visible()
        expect(page.get_by_text("Loss on other recipes, after", exact=True)).to_be_visible()
        assert not page.get_by_text("not measured").count(), "the page hands one_step_report a second batch"
        page_is_sound(page, "stage4a", screenshots)

        open_stage(page, server, "stage4b")
        small_training_form(page, validate_every=1)
        page.get_by_role("button", name="Start training").click()
        finished = page.get_by_text("✅ finished", exact=False)
        expect(finished.or_(page.get_by_text("❌ failed", exact=False)).first).to_be_visible(timeout=RUN_LIMIT_MS)
        expect(finished.first).to_be_visible()
        page_is_sound(page, "stage4b", screenshots)

        open_stage(page, server, "stage5")
        set_number(page, "New tokens per model, side by side", 8)
        page.get_by_role("button", name="Evaluate this run").click()
        results = page.get_by_text("Perplexity before and after", exact=True)
        expect(results.or_(error_boxes(page)).first).to_be_visible(timeout=RUN_LIMIT_MS)
        expect(page.get_by_text("Side by side (run", exact=False).first).to_be_visible()
        expect(page.get_by_text("Word overlap with held-out recipes (BLEU, ROUGE)", exact=True)).to_be_visible()
        expect(page.get_by_text("Rated 0 of", exact=False)).to_be_visible()
        page.get_by_role("button", name="A is better").first.click()  # one blind pair rated: the model revealed
        expect(page.get_by_text("Rated 1 of", exact=False)).to_be_visible()
        expect(page.get_by_text("Revealed:", exact=False)).to_have_count(1)
        page_is_sound(page, "stage5", screenshots)

        open_stage(page, server, "stage6")
        page.get_by_role("button", name="Generate with generate_custom_recipe").click()
        page.get_by_role("button", name="Keep these settings as my favourite").first.click()
        expect(page.get_by_text("⭐ Your favourite", exact=False)).to_be_visible(timeout=RUN_LIMIT_MS)
        page.get_by_role("button", name="Run the sweep", exact=False).click()
        expect(page.get_by_text("Running...", exact=False)).to_have_count(0)
        page_is_sound(page, "stage6", screenshots)

        open_stage(page, server, "stage7")  # the uploaded file is the one analysed, with a template for its columns
        expect(page.get_by_text("uploads/walk.csv")).to_have_count(0)
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(recipes_csv(tmp_path / "walk.csv")))
        expect(page.get_by_role("combobox", name="Dataset")).to_have_value("uploads/walk.csv")
        template = page.get_by_role("textbox", name="Template (each {field} is a column; end with [END])")
        expect(template).to_have_count(1)  # the first file's box goes once the page has run for the upload
        expect(template).to_have_value("RECIPE: {title}\nINGREDIENTS: {ingredients}\nDIRECTIONS: {directions}\n[END]")
        warning = page.get_by_text("rows removed as too short", exact=False)  # listed, with what keeps them
        expect(warning).to_contain_text("With the shortest field kept at 6")
        expect(page.get_by_text("Hummus · 2 eggs", exact=False).first).to_be_attached()
        assert not error_boxes(page).count(), error_boxes(page).all_inner_texts()
        set_number(page, "Shortest field kept (characters): clean_examples's min_chars", 6)
        expect(warning).to_have_count(0)
        expect(page.get_by_test_id("stMetric").filter(has_text="Rows kept")).to_contain_text("20")
        set_number(page, "Steps", 3)
        page.get_by_role("button", name="Train on this file").click()
        finished = page.get_by_text("✅ finished", exact=False)
        expect(finished.or_(page.get_by_text("❌ failed", exact=False)).first).to_be_visible(timeout=RUN_LIMIT_MS)
        expect(finished.first).to_be_visible()
        page_is_sound(page, "stage7", screenshots)

        page.goto(address(server, "experiments"))  # the 4B run and its stage 5 perplexity, compared
        expect(page.get_by_role("heading", name="Experiments side by side")).to_be_visible()
        expect(page.get_by_text("Running...", exact=False)).to_have_count(0)
        expect(page.get_by_role("button", name="Queue the variant")).to_be_visible()
        page_is_sound(page, "experiments", screenshots)

        page.goto(address(server, "chat"))  # the walk's own 4B run answers, streamed into a chat message
        expect(page.get_by_role("heading", name="Chat with your model")).to_be_visible()
        page.get_by_test_id("stSelectbox").filter(has_text="Model").click()
        page.get_by_role("option", name="fine-tuned · run", exact=False).first.click()
        set_number(page, "Max new tokens", 8)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("tomato soup")
        box.press("Enter")
        answer = page.get_by_test_id("stChatMessage").filter(has_text=re.compile(r"tokens in [\d.]+ s"))
        expect(answer).to_have_count(1, timeout=RUN_LIMIT_MS)
        expect(answer).to_contain_text("fine-tuned (")
        page_is_sound(page, "chat", screenshots)
        browser.close()


@pytest.fixture
def learner_server(tmp_path, tiny_model):
    """The dashboard for a learner (no demo mode) with a fresh store, its model the tiny one."""
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"], demo=False,
                               extra_env={"LAB_MODEL": str(tiny_model)})


def test_a_learner_with_a_fresh_store_finds_every_later_page_locked_until_stage1_passes(learner_server, tmp_path,
                                                                                          screenshots):
    from playwright.sync_api import expect, sync_playwright

    from tests.records import whole_run

    server = learner_server
    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path)
        for stage in STAGES[1:]:
            open_stage(page, server, stage.key)
            expect(page.get_by_text("This page is locked", exact=False).first).to_be_visible()
            assert not error_boxes(page).count(), (stage.key, error_boxes(page).all_inner_texts())
        page.screenshot(path=str(screenshots / "learner-locked.png"), full_page=True)

        stage1 = STAGES_BY_KEY["stage1"]
        with Store(tmp_path / "home" / "lab.sqlite", learner="browser") as store:  # the learner's checks all pass
            store.record_check_run("stage1", str(stage1.learner_file), file_hash(stage1.learner_file),
                                   whole_run("stage1"), complete=True, total=len(whole_run("stage1")))
        open_stage(page, server, "stage2")
        expect(page.get_by_text("This page is locked", exact=False)).to_have_count(0)
        open_stage(page, server, "stage3")
        expect(page.get_by_text("This page is locked", exact=False).first).to_be_visible()
        browser.close()
