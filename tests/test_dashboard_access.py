"""A learner's dashboard that no other account on the server can use (dashboard/logic/access.py).

- the key: made once, 0600, in a lab home the lab makes 0700; replaced when others could
  read it; a link in its place refused; a chosen key (``LAB_DASHBOARD_KEY``) too short refused
- AppTest: without the key, or with a wrong one, the app draws the refusal and nothing else,
  and never opens the store; with it, Home
- Chromium, on a dashboard started by ``bash dashboard/start.sh``: without the key or with a
  wrong one the page refuses and shows none of the learner's data; the address start.sh
  printed opens it, and the key survives a page switch and a reload; a proxy's header opens it too
- two real Unix accounts (root only, as CI runs): learner A's key file is unreadable by
  learner B even with the folders above it opened; A's dashboard, started by start.sh as A,
  listens on 127.0.0.1 only and prints its address with A's key
"""
from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dashboard.logic import access
from dashboard.logic.access import AccessError, dashboard_key, free_port, key_matches
from lessons.engine.stages import STAGES_BY_KEY, file_hash
from lessons.engine.store import Store
from tests.test_dashboard_browser import answers, screenshots  # noqa: F401 - screenshots is a fixture

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
PRINTED = re.compile(r"\[dashboard\] open (http://127\.0\.0\.1:(\d+)/\?key=(\S+)) in your browser")
REFUSAL = "This dashboard belongs to"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def own_key(tmp_path, monkeypatch) -> Path:
    """A lab home that does not exist yet, and no chosen key: the key file is the one used."""
    monkeypatch.delenv(access.KEY_ENV, raising=False)
    home = tmp_path / "new" / "lab"
    monkeypatch.setenv("LAB_HOME", str(home))
    return home


# -- the key ------------------------------------------------------------------------------------
def test_the_key_is_made_once_private_in_a_private_lab_home(own_key):
    key = dashboard_key()
    assert mode(own_key) == 0o700, "the lab home the lab makes is its owner's alone"
    assert mode(own_key / "dashboard.key") == 0o600
    assert len(key) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", key), "secrets.token_urlsafe(32)"
    assert dashboard_key() == key, "made once: the address start.sh printed stays valid"
    assert sorted(path.name for path in own_key.iterdir()) == ["dashboard.key"], "no partial file left"
    assert key_matches(key) and not key_matches(key[:-1] + "x") and not key_matches("") and not key_matches(None)


def test_a_key_file_others_could_read_is_replaced(own_key):
    key = dashboard_key()
    os.chmod(own_key / "dashboard.key", 0o644)
    assert dashboard_key() != key, "a key others could read is no secret any more"
    assert mode(own_key / "dashboard.key") == 0o600


def test_a_link_in_place_of_the_key_is_refused(own_key, tmp_path):
    planted = tmp_path / "planted.key"
    planted.write_text("a-key-someone-else-knows-0123456789\n")
    own_key.mkdir(parents=True)
    (own_key / "dashboard.key").symlink_to(planted)
    with pytest.raises(AccessError, match="remove it"):
        dashboard_key()


def test_a_chosen_key_is_used_and_a_short_one_refused(monkeypatch):
    monkeypatch.setenv(access.KEY_ENV, "a-key-chosen-by-the-tests")
    assert dashboard_key() == "a-key-chosen-by-the-tests"
    monkeypatch.setenv(access.KEY_ENV, "short")
    with pytest.raises(AccessError, match="at least 16"):
        dashboard_key()


def test_free_port_passes_over_a_port_someone_listens_on():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port(port) != port


# -- AppTest: the gate comes before the store ----------------------------------------------------
@pytest.mark.parametrize("query", [{}, {"key": "a-wrong-key-0123456789"}], ids=["no key", "a wrong key"])
def test_the_app_without_its_key_draws_the_refusal_and_opens_no_store(query, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_DEMO", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.clear()  # conftest gives every AppTest the key: this one comes without, or with a wrong one
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [access.refusal()]
    assert REFUSAL in at.error[0].value and "?key=" in at.error[0].value
    assert not at.title and not at.toggle and not at.dataframe, "nothing of the learner's is drawn"
    assert not (tmp_path / "lab.sqlite").exists(), "the store is never opened"


def test_the_app_with_its_key_opens_home(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv("LAB_DEMO", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()  # conftest's key is in the address
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.title[0].value == "🍳 LoRA Kitchen"
    assert at.query_params.get("key") == access.dashboard_key(), "the address keeps the key"


# -- a dashboard started by start.sh ------------------------------------------------------------
@contextmanager
def started_by_start_sh(log: Path, env: dict, *, start: Callable[..., subprocess.Popen] = subprocess.Popen
                        ) -> Iterator[re.Match]:
    """``bash dashboard/start.sh`` (through ``start``: ``popen_as`` for another account); yields its printed address.

    The match's groups: the address, its port, its key. The server is up (its health endpoint says ok).
    """
    with log.open("w") as output:
        process = start(["bash", "dashboard/start.sh", "--server.fileWatcherType", "none"], cwd=ROOT, env=env,
                        stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        printed = None
        while printed is None or not answers(f"http://127.0.0.1:{printed.group(2)}"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("start.sh did not start the dashboard:\n" + log.read_text()[-3000:])
            printed = printed or PRINTED.search(log.read_text())
            time.sleep(0.3)
        yield printed
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # start.sh exec'd streamlit: the group is it and its worker
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_env(home: Path, **more: str) -> dict:
    """The environment start.sh runs in: the lab home ``home``, the key from its key file, no demo, no class."""
    env = {name: value for name, value in os.environ.items()
           if name not in {access.KEY_ENV, "LAB_DEMO", "LAB_CLASS_DIR", "PORT"}}
    return {**env, "LAB_HOME": str(home), **more}


def lab_home_with_the_model(home: Path) -> Path:
    """``home`` (made, 0700) with the converted model cache linked in, so start.sh's set-up has nothing to do."""
    from lessons.engine.paths import lab_home

    home.mkdir(mode=0o700, exist_ok=True)
    (home / "models").symlink_to((lab_home() / "models").resolve(), target_is_directory=True)
    return home


@pytest.mark.slow
def test_a_visit_needs_the_key_start_sh_printed_and_keeps_it_across_a_page_switch_and_a_reload(tmp_path,
                                                                                                 screenshots):
    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS, error_boxes

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import expect, sync_playwright

    home = lab_home_with_the_model(tmp_path / "home")
    stage = STAGES_BY_KEY["stage1"]
    with Store(home / "lab.sqlite", learner="ada") as store:  # the learner's data a stranger must not see
        store.record_check_run("stage1", str(stage.learner_file), file_hash(stage.learner_file),
                               [{"name": "test_a", "title": "a", "outcome": "passed"},
                                {"name": "test_b", "title": "b", "outcome": "todo"}], complete=True)
    with started_by_start_sh(tmp_path / "start.log", start_env(home, LAB_LEARNER="ada")) as printed, \
            sync_playwright() as playwright:
        url, port, key = printed.groups()
        assert key == (home / "dashboard.key").read_text().strip(), "the key printed is the learner's key file's"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)

        for stranger in (f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/stage2?key=not-{key}"):
            page.goto(stranger)
            expect(page.get_by_text(REFUSAL, exact=False)).to_be_visible()
            page.wait_for_timeout(500)  # a rerun's last elements, had there been any
            for learners_data in ("🍳 LoRA Kitchen", "What to do next", "Concepts", "The data mess", "Demo mode"):
                assert not page.get_by_text(learners_data, exact=False).count(), (stranger, learners_data)
            assert not page.get_by_role("link", name=re.compile("Tokenizing")).count()
        page.screenshot(path=str(screenshots / "access-refused.png"), full_page=True)

        page.goto(url)
        expect(page.get_by_role("heading", name="🍳 LoRA Kitchen")).to_be_visible()
        expect(page.get_by_text("What to do next", exact=True)).to_be_visible()
        page.get_by_role("link", name="2 · The data mess").click()  # a page switch drops the query …
        expect(page.get_by_text("This page is locked", exact=False).first).to_be_visible()
        page.wait_for_url(f"**/stage2?key={key}")  # … and the app puts the key back
        page.reload()  # a new session, from the address alone
        expect(page.get_by_text("This page is locked", exact=False).first).to_be_visible()
        assert not page.get_by_text(REFUSAL, exact=False).count() and not error_boxes(page).count()

        proxied = browser.new_page(extra_http_headers={access.KEY_HEADER: key})  # as jupyter-server-proxy adds it
        proxied.goto(f"http://127.0.0.1:{port}/")
        expect(proxied.get_by_role("heading", name="🍳 LoRA Kitchen")).to_be_visible()
        assert "key=" not in proxied.url, "a key that came in a header stays out of the address"
        browser.close()


# -- two real accounts --------------------------------------------------------------------------
def listeners(port: int) -> list[tuple[str, int]]:
    """(address, uid) of every socket listening on ``port``, from the kernel's tables (IPv4 and IPv6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, uid = fields[1], fields[3], int(fields[7])
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:  # IPv4, little-endian
                    address = socket.inet_ntoa(bytes.fromhex(address)[::-1])
                found.append((address, uid))
    return found


@contextmanager
def others_may_enter(*folders: Path) -> Iterator[None]:
    """``o+x`` on ``folders`` for the test (as a class server's model cache is), their modes put back after."""
    before = {folder: mode(folder) for folder in folders}
    for folder, old in before.items():
        os.chmod(folder, old | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, old in before.items():
            os.chmod(folder, old)


@pytest.mark.slow
def test_learner_a_s_key_is_hers_alone_and_her_dashboard_listens_on_127_0_0_1_only(tmp_path):
    import pwd

    from lessons.engine.paths import PROJECT_ROOT, lab_home
    from tests.accounts import accounts, popen_as, private_home, run_as, shared_folder, unique_prefix

    for folder in [PROJECT_ROOT, *PROJECT_ROOT.parents]:  # ada runs the project's code, as a class server's learners do
        if not mode(folder) & stat.S_IXOTH:
            os.chmod(folder, mode(folder) | stat.S_IXOTH)

    with accounts(unique_prefix("lk"), 2) as (ada, bob), shared_folder("access") as parent:
        home = private_home(parent, ada)
        lab = home / "lab"  # not there yet: ada's lab makes it
        env = start_env(lab, HOME=str(home))
        made = run_as(ada, [sys.executable, "-m", "dashboard.logic.access", "key"], cwd=ROOT, env=env,
                      capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        key_file = lab / "dashboard.key"
        assert mode(lab) == 0o700 and lab.stat().st_uid == pwd.getpwnam(ada).pw_uid
        assert mode(key_file) == 0o600 and key_file.stat().st_uid == pwd.getpwnam(ada).pw_uid

        read_as_bob = [sys.executable, "-c", f"print(open({str(key_file)!r}).read())"]
        for opened in (False, True):
            if opened:  # the folders above let bob in: the key file's own mode still keeps him out
                os.chmod(home, 0o755)
                os.chmod(lab, 0o755)
            attempt = run_as(bob, read_as_bob, capture_output=True, text=True)
            assert attempt.returncode != 0 and "PermissionError" in attempt.stderr, (opened, attempt)
            assert made.stdout.strip() not in attempt.stdout
        os.chmod(home, 0o700)
        os.chmod(lab, 0o700)
        borrowed = run_as(bob, [sys.executable, "-m", "dashboard.logic.access", "key"], cwd=ROOT,
                          env=start_env(lab, HOME=str(home)), capture_output=True, text=True)
        assert borrowed.returncode == 1 and "set LAB_HOME to a folder of your own" in borrowed.stderr, borrowed
        assert made.stdout.strip() not in borrowed.stdout + borrowed.stderr

        models = (lab_home() / "models").resolve()
        (lab / "models").symlink_to(models, target_is_directory=True)
        parents = [folder for folder in [models, *models.parents] if folder.is_relative_to(PROJECT_ROOT / ".lab")]
        with others_may_enter(*parents), \
                started_by_start_sh(tmp_path / "start.log", env, start=partial(popen_as, ada)) as printed:
            url, port, key = printed.groups()
            assert key == made.stdout.strip(), "the address carries ada's own key"
            assert listeners(int(port)) == [("127.0.0.1", pwd.getpwnam(ada).pw_uid)], \
                "ada's dashboard listens on 127.0.0.1 alone, as ada"
            with urllib.request.urlopen(url, timeout=10) as answer:
                assert answer.status == 200
