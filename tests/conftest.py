"""The project's own tests (never run by learners).

They run with a private lab home, so they never touch a learner's store, and
share the one converted model cache so the 20 s conversion happens once.
"""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_lab_home(tmp_path_factory):
    from lessons.engine.assets import model_cache_dir
    from lessons.engine.paths import lab_home

    real_models = lab_home() / "models"
    home = tmp_path_factory.mktemp("lab-home")
    real_models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(real_models, target_is_directory=True)
    old = {key: os.environ.get(key) for key in ("LAB_HOME", "LAB_LEARNER", "LAB_CLASS_DIR")}
    os.environ["LAB_HOME"] = str(home)
    os.environ["LAB_LEARNER"] = "project-tests"
    os.environ.pop("LAB_CLASS_DIR", None)
    assert model_cache_dir().parent == home / "models"
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_collection_modifyitems(config, items):
    # Slow tests (whole check suites in subprocesses) last, so quick failures show first.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs whole check suites or a model; minutes, not seconds")
