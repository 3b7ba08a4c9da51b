"""The Class page and ``class report``: what an instructor sees of a class of real Unix accounts.

No model is needed: the page and the report only read what the learners' stores
already hold (check runs, logged losses, stage 5's evaluations, a stage 6
favourite), never run learner code or a model. So each learner's store is
written here directly, a few rows each, as their check runs and jobs would have.

The learners are real accounts (``tests/accounts.py``): the engine reads a
learner's folder only when that account owns it (group: the instructors', mode
2750), so a folder made for a name is chowned to it. CI runs as root, which may
make accounts; elsewhere these tests are skipped. The browser tests start one
Streamlit server each (about 10 s on two cores): a class of 60 on a 1280×720
projector as root (an instructor of every class), and one learner's own
dashboard, run as that learner's account, refusing the Class page.
"""
from __future__ import annotations

import csv
import os
import pwd
import re
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lessons.engine.blind_rating import BlindPair, pair_id, save_rating
from lessons.engine.classroom import LEARNER_MODE, SNAPSHOTS_DIR, ClassConfig, init_class, snapshot_path
from lessons.engine.paths import PROJECT_ROOT
from lessons.engine.stages import STAGES, content_hash
from lessons.engine.store import Store
from lessons.engine.verification import (FAILING, NOT_STARTED, SELF_REPORTED, VERIFIED,
                                         record_verification)
from tests.accounts import accounts, popen_as, private_home, shared_folder, unique_prefix
from tests.records import whole_run
from tests.test_dashboard_browser import screenshots  # noqa: F401 - the fixture: where screenshots go

CLASS_SIZE = 60      # the largest class the page is designed for: all of it on a projector
PROJECTOR = {"width": 1280, "height": 720}


# -- a class, written directly ---------------------------------------------------------------------------
@dataclass
class Work:
    """What one learner has done, as their store (and the instructors' verifications) will hold it."""
    verified: list[str] = field(default_factory=list)       # stages passed, snapshot kept, re-checked by verify
    self_reported: list[str] = field(default_factory=list)  # stages passed in their own store only
    failing: list[str] = field(default_factory=list)        # stages with a complete run that did not pass
    losses: list[float] = field(default_factory=list)       # one training run's train loss, step by step
    perplexity: tuple[float, float] | None = None           # before, after (stage 5's job, for that run)
    stop_rate: float | None = None                          # the fine-tuned model's, a share
    memorised: int | None = None
    favourite: tuple[float, float] | None = None            # temperature, top-p
    ratings: list[str] = field(default_factory=list)        # stage 5's blind ratings: each pair's winner
    bleu: tuple[float, float] | None = None                 # base, fine-tuned (stage 5's job, for that run)
    running: bool = False                                   # the training run is still going


def write_learner(config: ClassConfig, name: str, work: Work) -> Path:
    """``name``'s folder in the class, theirs (uid), the instructors' group, 2750, holding their store."""
    user = pwd.getpwnam(name)
    folder = config.folder / name
    folder.mkdir()
    with in_the_class(config), Store(folder / "lab.sqlite", learner=name) as store:
        for stage in work.verified + work.self_reported:
            content = f"# {name}'s {stage}\n".encode()
            store.record_check_run(stage, f"lessons/{stage}.py", content_hash(content), whole_run(stage),
                                   complete=True)
            if stage in work.verified:
                snapshot = snapshot_path(folder, stage, content_hash(content))
                snapshot.parent.mkdir(exist_ok=True)
                snapshot.write_bytes(content)
                _record_verification(config, name, stage, content_hash(content))
        for stage in work.failing:
            first = whole_run(stage)[0]["name"]
            store.record_check_run(stage, f"lessons/{stage}.py", "f" * 16, whole_run(stage, {first: "failed"}),
                                   complete=True)
        if work.losses:
            run = store.start_run("train", {"rank": 8}, status="running" if work.running else "finished")
            for step, loss in enumerate(work.losses, start=1):
                store.log_metric(run, step, loss=loss)
            if work.perplexity:
                store.save_evaluation("stage5", "perplexity_before", work.perplexity[0], run_id=run)
                store.save_evaluation("stage5", "perplexity_after", work.perplexity[1], run_id=run)
            if work.stop_rate is not None:
                store.save_evaluation("stage5", "finetuned: stop rate", work.stop_rate, run_id=run)
                store.save_evaluation("stage5", "base: stop rate", 0.0, run_id=run)
            if work.memorised is not None:
                store.save_evaluation("stage5", "finetuned: memorised titles", work.memorised, run_id=run)
            if work.bleu:
                store.save_evaluation("stage5", "bleu_base", work.bleu[0], run_id=run)
                store.save_evaluation("stage5", "bleu_after", work.bleu[1], run_id=run)
        for number, winner in enumerate(work.ratings):
            rate_blind(store, f"RECIPE: Dish {number}\n", winner)
        if work.favourite:
            store.put_result("stage6", "favourite", {"temperature": work.favourite[0], "top_p": work.favourite[1],
                                                     "text": "RECIPE: Banana Pancakes\nINGREDIENTS: …"})
    for path in [folder, *folder.rglob("*")]:  # as the learner's own lab would have left it
        os.chown(path, user.pw_uid, config.group_id)
        os.chmod(path, LEARNER_MODE if path.is_dir() else 0o440 if path.parent.name == SNAPSHOTS_DIR else 0o640)
    return folder


def rate_blind(store: Store, prompt: str, winner: str) -> None:
    """Press the stage 5 button that makes ``winner`` ("finetuned", "base" or "tie") win a pair for ``prompt``."""
    pair = BlindPair(pair_id("run", prompt, " base", " tuned"), "run", prompt, " base", " tuned")
    other = "B" if pair.finetuned_is == "A" else "A"
    save_rating(store, pair, {"finetuned": pair.finetuned_is, "base": other, "tie": "tie"}[winner])


@contextmanager
def in_the_class(config: ClassConfig) -> Iterator[None]:
    """``LAB_CLASS_DIR`` set while a store is made, so it is made as a learner's is (a rollback journal, 0640)."""
    before = os.environ.get("LAB_CLASS_DIR")
    os.environ["LAB_CLASS_DIR"] = str(config.folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LAB_CLASS_DIR")
        else:
            os.environ["LAB_CLASS_DIR"] = before


def _record_verification(config: ClassConfig, name: str, stage: str, file_hash: str) -> None:
    """The row ``class verify`` writes when a snapshot passed again (the sandboxed run itself is tested elsewhere)."""
    record_verification(config, name, stage, file_hash, {"outcome": "passed", "passed": 1, "total": 1, "detail": ""})


def work_of(index: int) -> Work:
    """A varied class: learner ``index`` is a little further on than the one before (nine steps, then again)."""
    keys = [stage.key for stage in STAGES]
    done = index % (len(keys) + 1)
    verified = keys[:min(done, index % 4)]
    work = Work(verified=verified, self_reported=keys[len(verified):done], failing=keys[done:done + 1])
    if done >= 5:  # past 4B: a training run
        work.losses = [3.2 - 0.02 * (index % 7) - 0.3 * step for step in range(5)]
        work.running = index % 10 == 5
    if done >= 6:  # past stage 5: evaluated
        work.perplexity = (20.0 + index % 5, 8.0 + (index % 6) / 2)
        work.stop_rate, work.memorised = (index % 4) / 4, index % 3
        work.bleu, work.ratings = (1.0, 5.0 + index % 4), ["finetuned", "tie", "base"][:1 + index % 3]
    if done >= 7:  # past stage 6: a favourite
        work.favourite = [(0.8, 0.9), (0.7, 0.95), (1.0, 1.0)][index // 9 % 3]
    return work


@contextmanager
def a_class(count: int, *, letters: str = "lkp") -> Iterator[tuple[ClassConfig, Path, list[str]]]:
    """A class folder (instructors' group: one account) with ``count`` learner accounts that have not started."""
    prefix = unique_prefix(letters)
    with shared_folder("class-page") as parent, \
            accounts(prefix, count + 1, group=f"{prefix}in", members=1) as names:
        yield init_class(parent / "class", f"{prefix}in"), parent, names[1:]


# -- the report -----------------------------------------------------------------------------------------
def test_the_class_report_has_a_row_per_learner_and_one_self_contained_html_file(tmp_path):
    from dashboard.logic.class_report import write_class_report

    with a_class(5, letters="lkr") as (config, parent, (ada, bob, cy, dee, eve)):
        write_learner(config, ada, Work(verified=["stage1"], self_reported=["stage2", "stage3", "stage4a", "stage4b",
                                                                            "stage5"],
                                        failing=["stage6"], losses=[3.0, 2.6, 2.2], perplexity=(21.5, 8.25),
                                        stop_rate=0.75, memorised=1, favourite=(0.8, 0.9), bleu=(1.0, 7.5),
                                        ratings=["finetuned", "tie"]))
        write_learner(config, bob, Work(self_reported=["stage1"], failing=["stage2"]))
        squatted = config.folder / cy  # made by dee, named after cy: not cy's, so never read as cy's
        write_learner(config, dee, Work())
        squatted.mkdir()
        (squatted / "lab.sqlite").write_bytes((config.folder / dee / "lab.sqlite").read_bytes())
        os.chown(squatted, pwd.getpwnam(dee).pw_uid, config.group_id)
        os.chmod(squatted, LEARNER_MODE)
        damaged = config.folder / eve  # eve's own folder, her store cut short: listed, and the class still reads
        damaged.mkdir()
        (damaged / "lab.sqlite").write_bytes(b"SQLite format 3\0 cut off here")
        os.chown(damaged, pwd.getpwnam(eve).pw_uid, config.group_id)
        os.chmod(damaged, LEARNER_MODE)

        csv_path, html_path = write_class_report(config, tmp_path / "out")
        rows = {row["learner"]: row for row in csv.DictReader(csv_path.open(encoding="utf-8"))}
        assert list(rows) == sorted([ada, bob, cy, dee, eve])
        assert rows[ada]["1"] == VERIFIED and rows[ada]["2"] == SELF_REPORTED and rows[ada]["6"] == FAILING
        assert rows[ada]["7"] == NOT_STARTED and rows[ada]["verified"] == "1"
        assert (rows[ada]["latest train loss"], rows[ada]["perplexity before"], rows[ada]["perplexity after"],
                rows[ada]["stop rate (%)"], rows[ada]["memorised titles"]) == ("2.2", "21.5", "8.25", "75.0", "1")
        assert (rows[ada]["favourite temperature"], rows[ada]["favourite top_p"], rows[ada]["problem"]) == \
            ("0.8", "0.9", "")
        assert (rows[ada]["BLEU after"], rows[ada]["blind win rate (%)"], rows[ada]["blind ratings"]) == \
            ("7.5", "75.0", "2")
        assert (rows[bob]["blind win rate (%)"], rows[bob]["blind ratings"]) == ("", "0")
        assert rows[bob]["1"] == SELF_REPORTED and rows[bob]["2"] == FAILING and rows[bob]["latest train loss"] == ""
        assert rows[cy]["problem"] == f"it belongs to {dee}, not to {cy}" and rows[cy]["1"] == "not read"
        assert "its store cannot be read" in rows[eve]["problem"] and rows[eve]["verified"] == "0"

        html = html_path.read_text(encoding="utf-8")
        assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 6, \
            "heat map, loss, perplexity, stop rate, memorised titles, favourites"
        assert not re.search(r"https?://|<script|<link|src=", html), "self-contained: nothing fetched from elsewhere"
        for name in (ada, bob, cy, dee, eve):
            assert f">{name}</text>" in html, f"{name} is on the heat map"
        assert "Who has done what: 5 learners × 8 stages" in html and "temperature 0.8 · top-p 0.9" in html
        assert f"it belongs to {dee}, not to {cy}" in html

        made = subprocess.run([sys.executable, "-m", "lessons", "class", "report", "--dir", str(config.folder),
                               "--out", str(tmp_path / "cli")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0, made.stderr
        assert (tmp_path / "cli" / "class.csv").read_text() == csv_path.read_text(), "the command writes the same"


def test_the_class_numbers_come_from_each_learners_newest_run_and_favourite():
    from dashboard.logic import classroom

    with a_class(3, letters="lkn") as (config, parent, (ada, bob, cy)):
        write_learner(config, ada, Work(losses=[3.0, 2.0], perplexity=(20.0, 9.0), favourite=(0.8, 0.9),
                                        running=True))
        write_learner(config, bob, Work(losses=[3.0, 2.5], favourite=(0.8, 0.9)))
        write_learner(config, cy, Work(losses=[3.1], favourite=(1.0, 1.0)))
        summaries = classroom.read_class(config)
    assert classroom.favourite_rows(summaries) == [
        {"temperature": 0.8, "top_p": 0.9, "learners": 2, "who": f"{ada}, {bob}"},
        {"temperature": 1.0, "top_p": 1.0, "learners": 1, "who": cy}]
    assert classroom.perplexity_rows(summaries) == [{"learner": ada, "measure": "before", "perplexity": 20.0},
                                                    {"learner": ada, "measure": "after", "perplexity": 9.0}]
    assert [classroom.latest_train_loss(s) for s in summaries] == [2.0, 2.5, 3.1]
    assert classroom.training_now(summaries) == 1
    spec = classroom.heat_map_chart(summaries, layout=classroom.PRESENTING).to_dict()
    assert spec["height"] == 3 * classroom.PRESENTING.row_px
    generation = {"prompt": "RECIPE: A\n", "text": "INGREDIENTS: b", "settings": {"temperature": 0.7, "top_p": 0.95}}
    kept = classroom.favourite_settings(generation)
    assert kept == {"temperature": 0.7, "top_p": 0.95, "text": "RECIPE: A\nINGREDIENTS: b"}
    assert classroom.is_favourite(generation, kept) and not classroom.is_favourite(generation, None)


def test_the_class_win_rate_pools_every_learners_blind_ratings():
    from dashboard.logic import classroom

    with a_class(3, letters="lkw") as (config, parent, (ada, bob, cy)):
        write_learner(config, ada, Work(losses=[3.0], ratings=["finetuned", "finetuned", "tie", "base"],
                                        bleu=(1.5, 9.25)))
        write_learner(config, bob, Work(ratings=["base", "tie"]))
        write_learner(config, cy, Work())
        summaries = classroom.read_class(config)
    assert classroom.win_rate_rows(summaries) == [{"learner": ada, "win rate (%)": 62.5, "ratings": 4},
                                                  {"learner": bob, "win rate (%)": 25.0, "ratings": 2}]
    pooled = classroom.class_win_rate(summaries)
    assert (pooled["ratings"], pooled["learners"]) == (6, 2)
    assert (pooled["finetuned"], pooled["tie"], pooled["base"]) == (2, 2, 2)
    assert pooled["win_rate"] == 0.5, "(2 wins + 2 ties / 2) / 6 ratings, pooled, not the mean of 62.5 and 25"
    assert classroom.bleu_rows(summaries) == [{"learner": ada, "BLEU, fine-tuned": 9.25, "BLEU, base": 1.5}]


# -- the page, in process ---------------------------------------------------------------------------------
def test_the_class_page_draws_the_heat_map_and_every_chart_for_an_instructor(monkeypatch):
    from streamlit.testing.v1 import AppTest

    app = str(PROJECT_ROOT / "dashboard" / "app.py")
    with a_class(3, letters="lka") as (config, parent, names):
        for index, name in enumerate(names):
            write_learner(config, name, work_of(7 + index))
        monkeypatch.setenv("LAB_CLASS_DIR", str(config.folder))
        at = AppTest.from_file(app, default_timeout=60)
        at.run()
        at.switch_page("views/class_room.py").run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [element.proto.spec for element in at.get("vega_lite_chart")]
    titles = ["Who has done what: 3 learners", "newest run", "newest evaluation: before",
              "Stop rate", "Memorised titles", "Win rate: each learner", "BLEU against held-out",
              "Favourite sampling settings"]
    missing = [title for title in titles if not any(title in spec for spec in specs)]
    assert not missing, (missing, [spec[-300:] for spec in specs], [e.value for e in at.caption])
    assert all(name in specs[0] for name in names)
    assert [box.label for box in at.selectbox] == ["Highlight"]


def test_without_a_class_the_class_page_explains_how_to_make_one():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/class_room.py").run()
    assert not at.exception
    assert "LAB_CLASS_DIR" in at.info[0].value and "class init" in at.markdown[0].value


# -- in a browser -----------------------------------------------------------------------------------------
@contextmanager
def dashboard_server(log: Path, env: dict, *, start: Callable[..., subprocess.Popen] = subprocess.Popen
                     ) -> Iterator[tuple[str, int]]:
    """``streamlit run dashboard/app.py`` on a free port, started by ``start`` (``popen_as`` for an account).

    Yields its address (no key in it: open pages with ``address``) and its process id.
    """
    from tests.test_dashboard_browser import answers, free_port

    port = free_port()
    with log.open("w") as output:
        process = start([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
                         "--server.port", str(port), "--server.address", "127.0.0.1",
                         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                        cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.3)
        yield url, process.pid
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def server_env(home: Path, config: ClassConfig) -> dict:
    from tests.test_dashboard_browser import BROWSER_KEY

    env = {name: value for name, value in os.environ.items() if not name.startswith(("LAB_", "PYTEST"))}
    return {**env, "HOME": str(home), "LAB_HOME": str(home / "lab"), "LAB_CLASS_DIR": str(config.folder),
            "LAB_DASHBOARD_KEY": BROWSER_KEY, "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def class_of_60():
    """A class of 60 learners, each at a different point of the assignment (``work_of``)."""
    started = time.monotonic()
    with a_class(CLASS_SIZE) as (config, parent, names):
        for index, name in enumerate(names):
            write_learner(config, name, work_of(index))
        print(f"a class of {CLASS_SIZE}: {time.monotonic() - started:.1f} s")  # a measurement, not a check
        yield config, parent, names


def browser_page(playwright, tmp_path):
    from playwright.sync_api import expect

    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
    page = browser.new_page(viewport=PROJECTOR)
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    return browser, page


def chromium_or_skip() -> None:
    from tests.test_dashboard_browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed: apt-get install -y chromium chromium-driver")


def scroll_sizes(locator) -> list[tuple[int, int]]:
    """(scrollHeight, clientHeight) of the element and each of its ancestors up to Streamlit's element box."""
    return locator.evaluate("""element => {
        const sizes = [];
        for (let node = element; node; node = node.parentElement) {
            sizes.push([node.scrollHeight, node.clientHeight]);
            if (node.dataset && node.dataset.testid === "stElementContainer") break;
        }
        return sizes;
    }""")


@pytest.mark.slow
def test_a_class_of_60_is_all_on_a_1280x720_projector_when_presenting(class_of_60, tmp_path, screenshots):
    from playwright.sync_api import expect, sync_playwright

    from tests.test_dashboard_browser import address, error_boxes

    chromium_or_skip()
    config, parent, names = class_of_60
    home = tmp_path / "instructor"
    home.mkdir()
    with dashboard_server(tmp_path / "streamlit.log", server_env(home, config)) as (url, _), \
            sync_playwright() as playwright:
        browser, page = browser_page(playwright, tmp_path)
        page.goto(address(url, "class"))
        expect(page.get_by_role("heading", name="🧑‍🏫 Class")).to_be_visible()
        expect(page.get_by_test_id("stSidebarNav").get_by_text("Class", exact=True)).to_be_visible()
        page.get_by_text("Presenting", exact=True).click()
        expect(page.get_by_test_id("stSidebar")).to_be_hidden()
        heat_map = page.locator(".vega-embed", has_text=f"Who has done what: {CLASS_SIZE} learners")
        expect(heat_map).to_be_visible()
        expect(page.locator(".vega-embed", has_text="in red, everyone else in grey")).to_be_visible()
        expect(page.locator(".vega-embed", has_text="Favourite sampling settings")).to_be_visible()
        page.screenshot(path=str(screenshots / "class-presenting.png"))

        svg = heat_map.locator("svg").first
        assert svg.bounding_box()["height"] >= CLASS_SIZE * 26, "a row of 26 px a learner: nothing squeezed"
        for scroll_height, client_height in scroll_sizes(heat_map):
            assert scroll_height <= client_height + 1, "the heat map never scrolls inside itself"
        for name in names:  # every learner's name drawn, and on screen once the page is scrolled to it
            label = svg.locator("text", has_text=re.compile(f"^{name}$"))
            expect(label).to_have_count(1)
            label.scroll_into_view_if_needed()
            box = label.bounding_box()
            assert box and -1 <= box["x"] and box["x"] + box["width"] <= PROJECTOR["width"] + 1, (name, box)
            assert -1 <= box["y"] and box["y"] + box["height"] <= PROJECTOR["height"] + 1, (name, box)  # 1 px: rounding
            assert box["height"] >= 14, f"{name} is readable on a projector ({box['height']:.0f} px)"
        page.screenshot(path=str(screenshots / "class-presenting-last-learners.png"))  # scrolled to the last name
        assert not error_boxes(page).count() and not page.get_by_text("Traceback").count()
        browser.close()
    assert (screenshots / "class-presenting.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_learners_own_dashboard_refuses_the_class_page_and_shows_no_classmate(class_of_60, tmp_path,
                                                                                 screenshots):
    from playwright.sync_api import expect, sync_playwright

    from tests.test_dashboard_browser import address

    chromium_or_skip()
    config, parent, names = class_of_60
    ada, classmates = names[0], names[1:]
    for folder in [PROJECT_ROOT, *PROJECT_ROOT.parents]:  # ada runs the project's code, as a class server's do
        mode = stat.S_IMODE(folder.stat().st_mode)
        if not mode & stat.S_IXOTH:
            os.chmod(folder, mode | stat.S_IXOTH)
    home = private_home(parent, ada)
    with dashboard_server(tmp_path / "streamlit.log", server_env(home, config),
                          start=lambda *args, **kwargs: popen_as(ada, *args, **kwargs)) as (url, pid), \
            sync_playwright() as playwright:
        assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(ada).pw_uid, "the dashboard runs as ada"
        browser, page = browser_page(playwright, tmp_path)
        page.goto(address(url, "class"))
        refusal = (f"The Class page is for the instructors of this class (group {config.instructors}); "
                   f"you are signed in as {ada}.")
        expect(page.get_by_text(refusal, exact=False)).to_be_visible()
        page.wait_for_timeout(1000)  # a rerun's last elements, had there been any
        page.screenshot(path=str(screenshots / "class-refused.png"))
        shown = page.locator("body").inner_text()
        assert not [name for name in classmates if name in shown], "no classmate's name on a learner's screen"
        assert not page.locator(".vega-embed").count()
        assert not page.get_by_test_id("stSidebarNav").get_by_text("Class", exact=True).count(), \
            "the menu lists no Class page for a learner"
        browser.close()
