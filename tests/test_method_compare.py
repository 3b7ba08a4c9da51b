"""The stage 4B comparison's logic: which runs belong together, their figures, the chart and the sentence.

No model trains here: the runs are rows in a real store with the summaries ``lessons.engine.methods`` writes
(tests/test_methods.py checks that training writes them).
"""
from __future__ import annotations

import pytest

from dashboard.logic import method_compare
from lessons.engine.store import Store
from lessons.engine.training import TrainSettings

LORA = {"trainable": {"trainable": 460_800, "total": 134_975_808, "percent": 0.34}, "peak_memory_mb": 600.0,
        "tokens_per_s": 900.0, "heldout_perplexity": 12.4, "stop_rate": 0.5, "saved_bytes": 1_900_000,
        "learning_rate": 5e-3, "memory_kind": "peak resident memory growth", "device": "cpu"}
FULL = {**LORA, "trainable": {"trainable": 134_975_808, "total": 134_975_808, "percent": 100.0},
        "peak_memory_mb": 1000.0, "tokens_per_s": 600.0, "heldout_perplexity": 12.0, "saved_bytes": 540_000_000,
        "learning_rate": 1e-4}
QLORA = {**LORA, "footprint_float32_bytes": 540_000_000, "footprint_4bit_bytes": 120_000_000,
         "heldout_perplexity": 12.9, "device": "cuda:0"}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lab.sqlite", learner="tests") as opened:
        yield opened


def add_run(store: Store, method: str, summary: dict, status: str = "finished") -> str:
    run_id = store.start_run("train", {"method": method}, name=method)
    store.update_run(run_id, status=status, summary=summary)
    return run_id


def rows_of(**runs) -> list[dict]:
    return [{**method_compare.row_from_run(method, {"id": method, "status": status, "summary": summary})}
            for method, (summary, status) in runs.items()]


def test_the_conclusion_is_computed_from_the_learners_numbers():
    text = method_compare.conclusion(rows_of(lora=(LORA, "finished"), full=(FULL, "finished")))
    assert text.startswith("LoRA trained 0.34 % of the weights, used 40 % less memory at its peak")
    assert "1.5× as many tokens per second" in text
    assert "perplexity was 3 % higher (12.40 against 12.00)" in text
    assert text.endswith("What it saves is 1.9 MB instead of 540.0 MB.")


def test_the_conclusion_says_lower_and_more_when_the_numbers_say_so():
    better = {**LORA, "heldout_perplexity": 10.0, "peak_memory_mb": 1200.0}
    text = method_compare.conclusion(rows_of(lora=(better, "finished"), full=(FULL, "finished")))
    assert "used 20 % more memory" in text and "perplexity was 17 % lower (10.00 against 12.00)" in text


def test_no_conclusion_until_both_lora_and_full_finished():
    assert method_compare.conclusion(rows_of(lora=(LORA, "finished"), full=({}, "running"))) is None
    assert method_compare.conclusion(rows_of(lora=(LORA, "finished"))) is None


def test_qlora_adds_the_memory_it_saved_to_the_conclusion():
    text = method_compare.conclusion(rows_of(lora=(LORA, "finished"), full=(FULL, "finished"),
                                             qlora=(QLORA, "finished")))
    assert text.endswith("QLoRA held the model in 120.0 MB instead of 540.0 MB, with a held-out perplexity of 12.90.")


def test_the_comparison_shows_its_own_runs_in_their_order(store, monkeypatch):
    add_run(store, "lora", LORA)  # an earlier run, not part of the comparison
    queued = []

    def fake_start(settings, *, reference, store, name):
        queued.append((settings.method, settings.learning_rate, name))
        return add_run(store, settings.method, {"lora": LORA, "full": FULL}[settings.method], status="queued")

    monkeypatch.setattr(method_compare.jobs, "start_job", fake_start)
    runs = method_compare.start_comparison(TrainSettings(max_steps=3), reference=True, store=store,
                                           methods=["lora", "full"])
    assert [method for method, _, _ in queued] == ["lora", "full"]
    assert queued[1][2] == "compare: full fine-tuning"
    rows = method_compare.comparison_rows(store)
    assert [(row["method"], row["run"], row["status"]) for row in rows] == [
        ("lora", runs["lora"], "queued"), ("full", runs["full"], "queued")]
    table = method_compare.table_rows(rows)
    assert table[1]["trainable %"] == "100.00" and table[0]["saved (MB)"] == "1.9"
    assert table[0]["model in memory (MB)"] == "–"


def test_the_chart_has_one_panel_per_measure_with_every_method():
    chart = method_compare.comparison_chart(rows_of(lora=(LORA, "finished"), full=(FULL, "finished")))
    data = chart.to_dict()["datasets"]
    values = next(iter(data.values()))
    assert {value["measure"] for value in values} == {title for _, title in method_compare.MEASURES}
    assert {value["method"] for value in values} == {"LoRA", "full fine-tuning"}
    assert method_compare.comparison_chart(rows_of(lora=({}, "queued"))) is None


def test_a_saved_gpu_qlora_run_is_found_and_a_cpu_one_is_not(store):
    assert method_compare.saved_gpu_qlora(store) is None
    add_run(store, "qlora", {**QLORA, "device": "cpu"})
    assert method_compare.saved_gpu_qlora(store) is None
    run_id = add_run(store, "qlora", QLORA)
    assert method_compare.saved_gpu_qlora(store)["run"] == run_id


def test_the_lab_report_has_the_comparison_table_and_its_conclusion(store, monkeypatch):
    from dashboard.logic.report import build_report_html

    assert "The full fine-tuning vs LoRA comparison (stage 4B page)" in build_report_html(store)
    runs = {"lora": add_run(store, "lora", LORA), "full": add_run(store, "full", FULL)}
    store.put_result("stage4b", method_compare.COMPARE_KEY, {"runs": runs})
    page = build_report_html(store)
    assert "<h2>Full fine-tuning vs LoRA</h2>" in page
    assert "LoRA trained 0.34 % of the weights, used 40 % less memory" in page
    assert "<td>full fine-tuning</td>" in page and "<td>540.0</td>" in page
