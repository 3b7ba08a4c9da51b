"""The Experiments page in a real browser (Debian Chromium): compare runs, then queue the variant with one setting
changed and watch it train.

Demo mode, so the runs are the "demo" learner's; three are put in the store first (two finished, one
failed, one of them evaluated by stage 5). The test adds a third run to the two the page picks, reads the
settings that differ, sees the loss overlay and the perplexity bars, then copies a run with rank 16 and
presses "Queue the variant": the run appears queued or running, then finished, named after the
run it copies. Jobs train with the fake trainer (``tests/dashboard_fake_training.py``): the page and the
job machinery are what is tested, not a model.
"""
from __future__ import annotations

import re
import sys
from dataclasses import asdict

import pytest

from lessons.engine.store import Store
from tests.dashboard_fake_training import TrainSettings
from tests.test_dashboard_browser import (CHROMIUM, address, error_boxes, open_browser,  # noqa: F401 - a fixture
                                          screenshots, serve_dashboard)
from tests.test_dashboard_walk import charts_without_marks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium chromium-driver"),
]
RUN_LIMIT_MS = 60_000  # a fake run of five 0.05 s steps, with its process's start-up, on a busy 2-core machine


@pytest.fixture
def experiments_server(tmp_path):
    """The dashboard in demo mode, its jobs trained by the fake trainer."""
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"],
                               extra_env={"LAB_JOBS_TRAINER": "tests.dashboard_fake_training", "FAKE_STEP_S": "0.05"})


def seed_runs(store: Store) -> dict[str, str]:
    """Three runs as the stage 4B page would have left them: their ids by name."""
    made = {}
    for name, status, settings in (("first try", "finished", TrainSettings(max_steps=5, rank=8)),
                                   ("more data", "finished", TrainSettings(max_steps=5, rank=8, n_recipes=80)),
                                   ("too fast", "failed", TrainSettings(max_steps=5, rank=8, learning_rate=0.5))):
        run_id = store.start_run("train", {**asdict(settings), "reference": True}, name=name, status=status)
        for step in range(1, 6 if status == "finished" else 3):
            store.log_metric(run_id, step, "train", loss=3.0 / step + (0.3 if name == "more data" else 0.0),
                             tokens_per_s=1000.0)
        store.log_metric(run_id, 2, "validation", loss=2.0)
        made[name] = run_id
    store.save_evaluation("stage5", "perplexity_after", 9.5, run_id=made["more data"])
    store.save_evaluation("stage5", "finetuned: stop rate", 2 / 3, run_id=made["more data"])
    return made


def test_compare_three_runs_then_queue_the_rank_16_variant_and_watch_it_finish(experiments_server, screenshots,
                                                                                 tmp_path):
    from playwright.sync_api import expect, sync_playwright

    home = tmp_path / "home"  # serve_dashboard's lab home
    with Store(home / "lab.sqlite", learner="demo") as store:  # demo mode reads the "demo" learner's rows
        made = seed_runs(store)

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path)
        page.goto(address(experiments_server, "experiments"))
        expect(page.get_by_role("heading", name="Experiments side by side")).to_be_visible()
        expect(page.get_by_text("Running...", exact=False)).to_have_count(0)

        # The page picks the newest two; add the first one, as a person does: type its name, Enter.
        runs = page.get_by_test_id("stMultiSelect").first
        runs.click()
        page.keyboard.type("first try")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        for name in made:
            expect(runs).to_contain_text(name)
        diff = page.get_by_test_id("stTable").first
        expect(diff).to_contain_text("n_recipes")
        expect(diff).to_contain_text("learning_rate")
        expect(diff).not_to_contain_text("batch_size")  # the same in all: named once, below the table
        expect(page.get_by_text("The same in all:", exact=False)).to_contain_text("batch_size")
        expect(page.locator(".vega-embed")).to_have_count(3)  # the loss overlay, perplexity and stop rate
        waiting = page.get_by_text("Not evaluated yet — evaluate it on stage 5", exact=False)
        expect(waiting).to_contain_text("first try")
        expect(waiting).to_contain_text("too fast")
        expect(waiting).not_to_contain_text("more data")  # stage 5 measured it: its bars are drawn
        results = page.get_by_test_id("stDataFrame").first  # the grid's cells are in the page for screen readers
        cells = results.locator('[role="gridcell"]')
        expect(cells.filter(has_text=re.compile(r"^9\.50?$"))).to_have_count(1)  # the perplexity after stage 5's
        expect(cells.filter(has_text=re.compile(r"^failed$"))).to_have_count(1)
        assert not charts_without_marks(page), charts_without_marks(page)
        page.screenshot(path=str(screenshots / "experiments-compare.png"), full_page=True)

        # Same run, one setting changed: "first try" with rank 16.
        page.get_by_role("combobox", name="Run to copy").click()
        page.get_by_role("option", name=re.compile("first try")).click()
        expect(page.get_by_role("combobox", name="Setting to change")).to_have_value("rank")
        value = page.get_by_role("textbox", name="New value")
        value.fill("8")
        value.press("Enter")
        page.get_by_role("button", name="Queue the variant").click()
        expect(page.get_by_text("already has rank = 8", exact=False)).to_be_visible()  # the same run again: refused

        value.fill("16")
        value.press("Enter")
        page.get_by_role("button", name="Queue the variant").click()
        header = page.get_by_role("heading", name=re.compile(r"^Run .* — "))
        expect(header).to_contain_text(re.compile("queued|running|finished"), timeout=RUN_LIMIT_MS)
        expect(page.get_by_text("Queued as “first try · rank 16”", exact=False)).to_be_visible()
        expect(header).to_contain_text("✅ finished", timeout=RUN_LIMIT_MS)
        results = page.get_by_test_id("stDataFrame").first  # the page redrew with the variant's end: both finished
        expect(results.locator('[role="gridcell"]').filter(has_text=re.compile(r"^finished$"))).to_have_count(2)
        diff = page.get_by_test_id("stTable").first  # now the original and its variant: rank is what differs
        expect(diff).to_contain_text("rank")
        expect(diff).to_contain_text("16")
        expect(diff).not_to_contain_text("n_recipes")
        expect(page.get_by_text("Running...", exact=False)).to_have_count(0)
        assert not error_boxes(page).count(), error_boxes(page).all_inner_texts()
        page.screenshot(path=str(screenshots / "experiments-variant.png"), full_page=True)
        browser.close()

    with Store(home / "lab.sqlite", learner="demo") as store:
        variant = store.runs("train")[-1]
        original = store.run(made["first try"])
    assert variant["name"] == "first try · rank 16" and variant["status"] == "finished"
    assert variant["config"]["rank"] == 16
    assert {k: v for k, v in variant["config"].items() if k != "rank"} == \
           {k: v for k, v in original["config"].items() if k != "rank"}
    assert max(m["step"] for m in store_metrics(home, variant["id"])) == 5


def store_metrics(home, run_id: str) -> list[dict]:
    with Store(home / "lab.sqlite", learner="demo") as store:
        return store.metrics(run_id)
