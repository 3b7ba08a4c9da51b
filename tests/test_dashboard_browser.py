"""The dashboard in a real browser: headless Chromium, driven by Playwright, as a person would see it.

A real ``streamlit run dashboard/app.py`` serves on a free local port (demo
mode, a private lab home); Chromium opens Home and two stage pages, and the
test checks the text a person reads and that the charts were drawn (Vega's
``.vega-embed``). Screenshots go to ``$LAB_SCREENSHOTS`` (default: the test's
temporary folder) so a person can look at them.

Needs Debian's Chromium (``apt-get install -y chromium chromium-driver``) and
Python Playwright (in requirements.txt; never ``playwright install``: the
browser is the system's). Skipped only when Chromium is not installed.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from lessons.engine.stages import STAGES_BY_KEY, file_hash
from lessons.engine.store import Store
from tests.test_dashboard_pages import TINY_STAGE1

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# Headless, no sandbox (we are root in a container), and no background traffic: this machine has no network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="Chromium is not installed: apt-get install -y chromium chromium-driver"),
]


# The key every test server is started with (LAB_DASHBOARD_KEY, dashboard/logic/access.py): each address a test
# opens carries it, as the one start.sh prints does; a page switch keeps it (the app puts it back in the address).
BROWSER_KEY = "browser-tests-dashboard-key"


def address(server: str, path: str = "", query: str = "") -> str:
    """``server/path?key=…`` (then ``&query``): a page's address as a learner opens it, the dashboard's key in it."""
    return f"{server}/{path}?key={BROWSER_KEY}" + (f"&{query}" if query else "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_dashboard(tmp_path, command: list[str], *, demo: bool = True,
                    extra_env: dict | None = None) -> Iterator[str]:
    """Run ``command`` (which serves ``dashboard/app.py``) on a free port, in demo mode unless ``demo`` is False.

    ``extra_env`` adds to its environment (``LAB_MODEL``: a tiny model instead of SmolLM2). Its key is
    ``BROWSER_KEY``: open its pages with ``address(url, "stage1")``.

    Yields its address (no key in it).
    """
    from lessons.engine.paths import lab_home

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to((lab_home() / "models").resolve(), target_is_directory=True)
    env = {**os.environ, "LAB_HOME": str(home), "LAB_LEARNER": "browser", "LAB_DEMO": "1",
           "LAB_DASHBOARD_KEY": BROWSER_KEY, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    env.pop("LAB_CLASS_DIR", None)
    if not demo:
        env.pop("LAB_DEMO")
    stage = STAGES_BY_KEY["stage1"]
    with Store(home / "lab.sqlite", learner="browser") as store:  # one check run, so Home has its chart
        store.record_check_run("stage1", str(stage.learner_file), file_hash(stage.learner_file),
                               [{"name": "test_a", "title": "a", "outcome": "passed"},
                                {"name": "test_b", "title": "b", "outcome": "todo"}], complete=True)
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [*command, "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()[-3000:])
        time.sleep(0.3)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def answers(url: str) -> bool:
    """The server at ``url`` is up: its health endpoint says ok."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture
def server(tmp_path):
    """``streamlit run dashboard/app.py`` in demo mode on a free port; yields its address."""
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"])


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("LAB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_home_and_two_stage_pages_in_chromium(server, screenshots, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1400, "height": 3200})  # tall: Streamlit scrolls inside its own container
        page = browser.new_page()
        page.set_default_timeout(120_000)  # a cold model load on a busy 2-core machine
        expect.set_options(timeout=120_000)

        started = time.monotonic()
        page.goto(address(server))
        expect(page.get_by_role("heading", name="🍳 LoRA Kitchen")).to_be_visible()
        first_page_s = time.monotonic() - started
        expect(page.get_by_text("What to do next", exact=True)).to_be_visible()
        expect(page.get_by_text("Success tiers", exact=True)).to_be_visible()
        expect(page.locator(".vega-embed").first).to_be_visible()
        expect(page.get_by_text("Demo mode (reference solutions)", exact=True)).to_be_visible()
        page.screenshot(path=str(screenshots / "home.png"), full_page=True)
        print(f"first page: {first_page_s:.1f} s")  # a measurement, not a pass/fail line
        assert not page.get_by_test_id("stAppDeployButton").count(), "no Deploy button (.streamlit/config.toml)"
        assert not page.get_by_role("button", name="Deploy").count()

        page.goto(address(server, "stage1"))
        expect(page.get_by_role("heading", name="Stage 1 — Concepts: a model, its tokens, the 'before' picture")
               ).to_be_visible()
        expect(page.get_by_text("Tokenizer explorer", exact=True)).to_be_visible()
        expect(page.get_by_text("26 tokens", exact=True)).to_be_visible()
        expect(page.locator(".vega-embed").first).to_be_visible()
        expect(page.get_by_text("134,515,008").first).to_be_visible()
        page.screenshot(path=str(screenshots / "stage1.png"), full_page=True)
        page.locator(".vega-embed").first.screenshot(path=str(screenshots / "stage1-tokens.png"))
        # A warm load: the same page again, its model already loaded in the worker. Timed from the navigation
        # to its main content (the token chart and the parameter count) on screen; printed, not asserted.
        started = time.monotonic()
        page.goto(address(server, "stage1"))
        expect(page.get_by_text("26 tokens", exact=True)).to_be_visible()
        expect(page.locator(".vega-embed").first).to_be_visible()
        expect(page.get_by_text("134,515,008").first).to_be_visible()
        print(f"stage 1 page, warm load: {time.monotonic() - started:.2f} s")

        page.goto(address(server, "stage2"))
        expect(page.get_by_role("heading", name="Stage 2 — The data mess: load, format, filter, split")).to_be_visible()
        expect(page.locator(".vega-embed")).to_have_count(2)
        expect(page.get_by_text("3,011", exact=True)).to_be_visible()
        removed = page.locator(".vega-embed", has_text="After filtering: recipes removed, by rule (3,011 kept)")
        expect(removed).to_be_visible()  # the removals on their own scale: no 3,011 bar beside them
        removed.scroll_into_view_if_needed()
        removed.screenshot(path=str(screenshots / "stage2-removed.png"))
        steps = page.locator("ol", has_text="format_recipe").first  # the lesson's numbered list, code block and all
        expect(steps.locator(":scope > li")).to_have_count(5)
        expect(steps.locator(":scope > li").nth(2).locator("pre")).to_contain_text("RECIPE: Pancakes")
        page.screenshot(path=str(screenshots / "stage2.png"), full_page=True)
        assert not page.get_by_text("Traceback").count(), "no page shows a raw traceback"
        browser.close()
    print(f"screenshots: {screenshots}")
    for name in ("home.png", "stage1.png", "stage2.png"):
        assert (screenshots / name).stat().st_size > 10_000


def test_a_fresh_servers_first_request_can_be_a_link_to_a_stage(server, tmp_path):
    """A bookmark or a reload on /stage3 right after start: the navigation and demo mode are there, not locked."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)
        page.goto(address(server, "stage3"))  # the first request this server ever gets
        expect(page.get_by_role("heading", name="Stage 3 — Tokenizing: padding, truncation, [END]")
               ).to_be_visible()
        expect(page.get_by_text("Demo mode (reference solutions)", exact=True)).to_be_visible()
        assert not page.get_by_text("This page is locked").count()
        browser.close()


# A learner's stage 1 file whose generate_text ends the process that runs it; the rest is as small as can be.
EXITING_STAGE1 = "import os\n\n" + TINY_STAGE1 + textwrap.dedent('''\


    def generate_text(model, tokenizer, prompt, **settings):
        os._exit(0)
    ''')


@pytest.fixture
def server_with_an_exiting_stage1(tmp_path):
    """The dashboard, reading stage 1's code from a planted file (``tests/planted_dashboard.py``)."""
    planted = tmp_path / "stage1_exits.py"
    planted.write_text(EXITING_STAGE1)
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "tests.planted_dashboard", f"stage1={planted}", "--"])


def test_learner_code_that_calls_os_exit_ends_the_worker_and_the_server_stays(server_with_an_exiting_stage1,
                                                                               screenshots, tmp_path):
    """Pressing the button runs generate_text, which calls os._exit(0): the page says so, the server still answers."""
    from playwright.sync_api import expect, sync_playwright

    url = server_with_an_exiting_stage1
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)
        page.goto(address(url, "stage1"))
        expect(page.get_by_text("Tokenizer explorer", exact=True)).to_be_visible()
        page.get_by_role("button", name="Generate the before picture").click()
        error = page.get_by_text("your code called os._exit(0), which ended the worker process that runs it.")
        expect(error.first).to_be_visible()
        line = EXITING_STAGE1.splitlines().index("    os._exit(0)") + 1
        expect(page.get_by_text(f"stage1_exits.py:{line}: os._exit(0)").first).to_be_visible()
        restart = page.get_by_role("button", name="🔄 Restart the worker")
        expect(restart).to_be_visible()
        page.screenshot(path=str(screenshots / "stage1-os-exit.png"), full_page=True)
        assert not page.get_by_text("Connection error").count(), "the server is still there"
        assert answers(url)

        restart.click()
        expect(page.get_by_text("The worker was restarted")).to_be_visible()
        expect(error).to_have_count(0)  # the rerun after the restart does not press Generate again

        page.goto(address(url, "stage1"))  # and the next page load is served as usual, by a fresh worker
        expect(page.get_by_role("heading", name="Stage 1 — Concepts: a model, its tokens, the 'before' picture")
               ).to_be_visible()
        expect(page.get_by_text("1 tokens", exact=False).first).to_be_visible()
        assert not page.get_by_text("Traceback").count()
        browser.close()


def open_browser(playwright, tmp_path, *, height: int = 2400):
    """Headless Chromium (the system's) with one page, patient as a busy 2-core machine needs."""
    from playwright.sync_api import expect

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.set_default_timeout(120_000)
    expect.set_options(timeout=120_000)
    return browser, page


def error_boxes(page):
    """Every red box on the page: ``st.error`` and an exception."""
    return page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')


@pytest.fixture
def server_without_demo(tmp_path):
    """``streamlit run dashboard/app.py`` with no demo mode asked for: only the toggle or ?demo=1 gives it."""
    yield from serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"], demo=False)


def test_demo_mode_from_the_toggle_survives_a_page_switch_a_reload_and_a_typed_address(server_without_demo,
                                                                                        screenshots, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url = server_without_demo
    locked = "This page is locked"
    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path)
        page.goto(address(url, "stage5"))
        expect(page.get_by_text(locked, exact=False).first).to_be_visible()  # a learner who has not passed 4B
        assert "demo" not in page.url

        page.get_by_text("Demo mode (reference solutions)", exact=True).click()
        expect(page.get_by_text(locked, exact=False)).to_have_count(0)
        page.wait_for_url(f"**/stage5?key={BROWSER_KEY}&demo=1")

        page.get_by_role("link", name="3 · Tokenizing").click()  # a page switch drops the query …
        expect(page.get_by_role("heading", name="Stage 3", exact=False).first).to_be_visible()
        page.wait_for_url(f"**/stage3?key={BROWSER_KEY}&demo=1")  # … and the app puts both back

        page.reload()  # an instructor reloads during a demo: a new session, still in demo mode
        expect(page.get_by_role("heading", name="Stage 3", exact=False).first).to_be_visible()
        expect(page.get_by_role("switch", name="Demo mode (reference solutions)")).to_be_checked()
        assert not page.get_by_text(locked, exact=False).count()
        page.screenshot(path=str(screenshots / "demo-after-reload.png"), full_page=True)

        typed = browser.new_page(viewport={"width": 1400, "height": 2400})  # an address typed by hand
        typed.goto(address(url, "stage6", "demo=1"))
        expect(typed.get_by_role("heading", name="Stage 6", exact=False).first).to_be_visible()
        expect(typed.get_by_role("switch", name="Demo mode (reference solutions)")).to_be_checked()
        assert not typed.get_by_text(locked, exact=False).count()
        typed.close()

        page.get_by_text("Demo mode (reference solutions)", exact=True).click()  # off: the address forgets it
        expect(page.get_by_text(locked, exact=False).first).to_be_visible()
        page.wait_for_url(lambda address: "demo" not in address)
        page.reload()
        expect(page.get_by_text(locked, exact=False).first).to_be_visible()
        browser.close()


def test_stage6_temperature_chart_has_a_readable_plot_area(server, screenshots, tmp_path):
    """The chart analysis question 1 sends the learner to: a plot area of at least 200 px, its title above it.

    Measured in the browser on Vega's SVG: the whole chart's box, and the plot area as the box of the y
    axis's grid lines (they run from 0 % to 100 %, the fixed scale, so they span the plot's height).
    """
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path)
        page.goto(address(server, "stage6"))
        chart = page.locator(".vega-embed", has_text="logits [2, 1, 0] after your functions").first
        expect(chart).to_be_visible()
        chart.scroll_into_view_if_needed()
        svg = chart.locator("svg").first.bounding_box()
        y_axis = chart.locator(".role-axis-grid").first.bounding_box()
        x_labels = [label.bounding_box() for label in
                    chart.locator('g[aria-label^="X-axis"] .role-axis-label text').all()]
        title = chart.locator(".role-title-text").first.bounding_box()
        slider = page.get_by_test_id("stSlider").filter(has_text="top-p").first.bounding_box()
        chart.screenshot(path=str(screenshots / "stage6-temperature.png"))
        page.screenshot(path=str(screenshots / "stage6.png"), full_page=True)
        next_token = page.locator(".vega-embed", has_text="base: the 8 most probable next tokens").first
        expect(next_token).to_be_visible()
        next_token.scroll_into_view_if_needed()
        next_token_box = next_token.locator("svg").first.bounding_box()
        plot = next_token.locator(".role-axis-grid").first.bounding_box()  # the x grid spans the plot's height
        legend = next_token.locator(".role-legend-label text").all_text_contents()
        token_labels = next_token.locator('g[aria-label^="Y-axis"] .role-axis-label text').all_text_contents()
        next_token.screenshot(path=str(screenshots / "stage6-next-token.png"))
        browser.close()
    print(f"next-token chart: {next_token_box['height']:.0f} px tall, plot {plot['height']:.0f} px, "
          f"legend {legend}, tokens {token_labels}")
    assert next_token_box["height"] <= 450, "a chart to read at a glance, not a scroll"
    assert legend == ["the model's own", "after temperature and top-p"], "the legend's labels whole"
    assert len(token_labels) == 8 and not any("\ufffd" in label or "Ġ" in label for label in token_labels)
    assert plot["height"] / 8 >= 28, "room for each token's label and its two bars"
    print(f"temperature chart: svg {svg['width']:.0f} x {svg['height']:.0f} px, plot area {y_axis['height']:.0f} px "
          f"tall, title at y={title['y']:.0f}, last slider ends at y={slider['y'] + slider['height']:.0f}")
    assert svg["height"] >= 250
    assert y_axis["height"] >= 200, "the plot area itself, not only the box around it"
    assert title["y"] + title["height"] <= y_axis["y"], "the title is above the plot"
    assert title["y"] >= slider["y"] + slider["height"], "and below the sliders, not under them"
    assert len(x_labels) == 3
    for left, right in zip(x_labels, x_labels[1:]):
        assert left["x"] + left["width"] <= right["x"], "the token labels do not overlap"
