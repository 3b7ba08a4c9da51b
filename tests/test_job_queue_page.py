"""What a learner sees on the stage 4B page when the training queue is full, in a real browser (Debian Chromium).

One slot (``LAB_QUEUE_SLOTS=1``), and a classmate's job holds it. One tiny job has already run through
this lab's queue to the end, so the queue knows how long a job takes. Then the learner presses
"▶ Start training":

* the run's header says it is queued, and the page says where it waits and for how long:
  "number 1 in line (1 waiting, 1 of 1 slots busy); about 1 min to wait";
* "⏹ Cancel" takes it out of the line: the page says "cancelled while queued", the store has the run
  cancelled with not one metric (it never trained), and its queue ticket is cancelled too;
* once the classmate's job ends and frees the slot, a fresh Start trains at once, to "✅ finished".

The server's jobs train with the fake trainer (``tests/dashboard_fake_training.py``), so nothing here
waits on a model; the queue and the page are what is tested.
"""
from __future__ import annotations

import os
import re
import sys
import time

import pytest

from lessons.engine.store import Store
from tests.test_dashboard_browser import (CHROMIUM, error_boxes, open_browser,  # noqa: F401 - a fixture
                                          screenshots, serve_dashboard)
from tests.test_dashboard_walk import open_stage, set_number

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium chromium-driver"),
]
RUN_LIMIT_MS = 60_000  # a fake run of five 0.05 s steps, with its process's start-up, on a busy 2-core machine


@pytest.fixture
def queue_server(tmp_path):
    """The dashboard in demo mode, one job at a time, its jobs trained by the fake trainer."""
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"],
                               extra_env={"LAB_JOBS_TRAINER": "tests.dashboard_fake_training", "FAKE_STEP_S": "0.05",
                                          "LAB_QUEUE_SLOTS": "1"})


def run_one_tiny_job(home, store_path, monkeypatch) -> str:
    """One real job through the queue in ``home`` (the tiny trainer), to its end; its run id back."""
    from lessons.bench.tiny_trainer import TrainSettings
    from lessons.engine import jobs

    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv(jobs.TRAINER_ENV, "lessons.bench.tiny_trainer")
    monkeypatch.setenv("LAB_QUEUE_SLOTS", "1")
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    with Store(store_path) as store:
        run_id = jobs.start_job(TrainSettings(steps=10), reference=False, store=store)
        deadline = time.monotonic() + 60
        while (status := jobs.job_status(run_id, store=store)["status"]) in jobs.ACTIVE:
            assert time.monotonic() < deadline, f"the tiny job is still {status} after 60 s:\n{jobs.log_tail(run_id)}"
            time.sleep(0.2)
    assert status == "finished", jobs.log_tail(run_id)
    return run_id


def test_a_full_queue_shows_the_place_in_line_and_the_wait_and_cancel_takes_the_run_out(queue_server, screenshots,
                                                                                         tmp_path, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    from lessons.engine import job_queue

    home = tmp_path / "home"  # serve_dashboard's lab home: its store and its queue
    tiny = run_one_tiny_job(home, tmp_path / "tiny-jobs.sqlite", monkeypatch)

    q = job_queue.LocalQueue(home / "queue", job_queue.QueueSettings(slots_per_gpu=1))
    assert q.ticket_for(tiny)["state"] == "finished" and q.typical_duration_s() is not None
    ticket = q.submit("classmates-run", "train", account="classmate", pid=os.getpid())
    lease = q.try_start(ticket)
    assert lease is not None, "the classmate's job takes the only slot"
    held = True
    try:
        with sync_playwright() as playwright:
            browser, page = open_browser(playwright, tmp_path)
            open_stage(page, queue_server, "stage4b")
            page.get_by_text("More settings", exact=True).click()
            set_number(page, "Max steps (0 = all epochs)", 5)
            start = page.get_by_role("button", name="Start training")
            start.click()

            header = page.get_by_role("heading", name=re.compile(r"^Run .* — "))
            expect(header).to_contain_text("⏳ queued", timeout=RUN_LIMIT_MS)
            line = page.get_by_test_id("stAlertContentInfo").filter(has_text="in line")
            expect(line).to_contain_text("number 1 in line (1 waiting, 1 of 1 slots busy)", timeout=RUN_LIMIT_MS)
            expect(line).to_contain_text("min to wait")
            expect(line).not_to_contain_text("no estimate")
            page.screenshot(path=str(screenshots / "queue-waiting.png"), full_page=True)
            with Store(home / "lab.sqlite", learner="demo") as store:  # demo mode: the "demo" learner's rows
                (run,) = store.runs("train")
            run_id = run["id"]
            expect(header).to_contain_text(run_id)
            assert q.ticket_for(run_id)["state"] == "waiting"

            page.get_by_role("button", name="Cancel").click()
            expect(page.get_by_text("cancelled while queued", exact=False).first).to_be_visible(
                timeout=RUN_LIMIT_MS)
            expect(header).to_contain_text("⏹ cancelled")
            page.screenshot(path=str(screenshots / "queue-cancelled.png"), full_page=True)
            with Store(home / "lab.sqlite", learner="demo") as store:
                cancelled = store.run(run_id)
                assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled while queued")
                assert store.metrics(run_id) == [], "it never trained"
            assert q.ticket_for(run_id)["state"] == "cancelled"
            assert q.ticket_for("classmates-run")["state"] == "running", "the classmate's job goes on"

            lease.release("finished")  # the classmate's job ends: the slot is free
            held = False
            expect(start).to_be_enabled()
            start.click()
            expect(header).not_to_contain_text(run_id, timeout=RUN_LIMIT_MS)  # the new run is the one shown
            expect(header).to_contain_text("✅ finished", timeout=RUN_LIMIT_MS)
            expect(page.locator(".vega-embed").first).to_be_visible()  # its loss curve
            expect(page.get_by_text("Running...", exact=False)).to_have_count(0)  # the page's last rerun is done
            assert not error_boxes(page).count(), error_boxes(page).all_inner_texts()
            page.screenshot(path=str(screenshots / "queue-finished.png"), full_page=True)
            browser.close()
        with Store(home / "lab.sqlite", learner="demo") as store:
            first, second = store.runs("train")
            assert first["id"] == run_id and second["status"] == "finished"
            assert max(m["step"] for m in store.metrics(second["id"])) == 5
        assert q.ticket_for(second["id"])["state"] == "finished"
    finally:
        if held:
            lease.release("failed")
        q.close()
