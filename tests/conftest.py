"""The project's own tests (never run by learners).

They run with a private lab home, so they never touch a learner's store, and
share the one converted model cache so the 20 s conversion happens once.
"""
from __future__ import annotations

import os

import pytest

# The dashboard's key in every test (dashboard/logic/access.py): LAB_DASHBOARD_KEY chooses it, and each AppTest
# opens the app with it in the address, as a learner opens the address start.sh printed.
TEST_DASHBOARD_KEY = "project-tests-dashboard-key"


@pytest.fixture(scope="session", autouse=True)
def private_lab_home(tmp_path_factory):
    from lessons.engine.assets import model_cache_dir
    from lessons.engine.paths import lab_home

    real_models = lab_home() / "models"
    home = tmp_path_factory.mktemp("lab-home")
    real_models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(real_models, target_is_directory=True)
    old = {key: os.environ.get(key) for key in ("LAB_HOME", "LAB_LEARNER", "LAB_CLASS_DIR", "LAB_DASHBOARD_KEY")}
    os.environ["LAB_HOME"] = str(home)
    os.environ["LAB_LEARNER"] = "project-tests"
    os.environ["LAB_DASHBOARD_KEY"] = TEST_DASHBOARD_KEY
    os.environ.pop("LAB_CLASS_DIR", None)
    assert model_cache_dir().parent == home / "models"
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def apptest_opens_the_dashboard_with_its_key(private_lab_home):
    """Every ``AppTest`` starts with ``?key=`` in its address, so ``dashboard/app.py`` lets it in.

    Only the tests' stand-in for the learner's browser changes: the app's check stays as it is
    (tests/test_dashboard_access.py runs it without the key and is refused).
    """
    from streamlit.testing.v1 import AppTest

    from dashboard.logic.access import KEY_PARAM

    original = AppTest.__init__

    def with_the_key(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.query_params[KEY_PARAM] = TEST_DASHBOARD_KEY

    AppTest.__init__ = with_the_key
    yield
    AppTest.__init__ = original


@pytest.fixture(scope="session")
def warm_worker(private_lab_home, tmp_path_factory):
    """One warm worker per test process: the planted mistakes' and mutants' check runs fork their worker from it
    (checks/warm_worker.py) instead of importing torch again; the reference and pristine runs start cold."""
    from checks.warm_worker import WarmWorker
    from tests.checks_runner import run_environment

    worker = WarmWorker(tmp_path_factory.mktemp("warm-worker"), env=run_environment())
    yield worker
    worker.stop()


def pytest_collection_modifyitems(config, items):
    # Slow tests (whole check suites in subprocesses) last, so quick failures show first.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs whole check suites or a model; minutes, not seconds")
