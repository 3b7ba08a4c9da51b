"""A damaged store: every dashboard page says so and offers the repair, instead of SQLite's traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lessons.engine.store import Store
from tests.test_store import age_backup

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@pytest.mark.parametrize("page", [None, "views/stage3.py"])
def test_a_damaged_store_is_said_and_repaired_from_the_page(page, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.setenv("LAB_LEARNER", "ada")
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    monkeypatch.delenv("LAB_DEMO", raising=False)
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        store.save_answer("stage1", "q1", "an answer")
    age_backup(tmp_path)
    Store(tmp_path / "lab.sqlite", learner="ada").close()  # ten minutes on, the next open backs up the answer
    (tmp_path / "lab.sqlite").write_bytes(b"\0" * 8192)  # what a disk that filled up can leave

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["demo"] = False
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is damaged" in e.value and "repair-store" in e.value for e in at.error), [e.value for e in at.error]
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("The store was repaired" in s.value and "restored the backup" in s.value for s in at.success)
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        assert store.answers() == {("stage1", "q1"): "an answer"}
