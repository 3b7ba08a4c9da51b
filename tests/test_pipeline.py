"""The instructor's pipeline, end to end, on a tiny model.

The model is tiny (2 layers, 64 wide, the real tokenizer; see lessons/engine/tiny.py)
so every stage of the real pipeline runs in under a minute here; the real
numbers come from `python -m lessons pipeline --reference --quick` (docs/benchmarks.md).
"""
from __future__ import annotations

import math

import pytest

from lessons.engine.pipeline import PipelineSettings, run_pipeline
from lessons.engine.store import Store
from lessons.engine.tiny import real_tokenizer, tiny_llama


@pytest.mark.slow
def test_pipeline_runs_every_stage_and_keeps_its_results(tmp_path, capsys):
    tokenizer = real_tokenizer()
    folder = tmp_path / "tiny-model"
    tiny_llama(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    settings = PipelineSettings(model=str(folder), n_recipes=40, eval_recipes=4, max_steps=2, batch_size=2,
                                eval_every=1, new_tokens=5)
    store = Store(tmp_path / "lab.sqlite", learner="demo")

    numbers = run_pipeline(settings, reference=True, store=store)

    printed = capsys.readouterr().out
    for label in ("1", "2", "3", "4A", "4B", "5", "6"):
        assert f"=== Stage {label}:" in printed
    assert numbers["data"]["raw"] == 3129 and numbers["data"]["valid"] == 3011
    assert numbers["data"]["train"] + numbers["data"]["validation"] == 40
    before, after = numbers["perplexity"]["before"], numbers["perplexity"]["after"]
    assert math.isfinite(before) and math.isfinite(after) and before > 1 and after > 1
    assert 0.0 <= numbers["stop_rate"] <= 1.0
    assert "Held-out perplexity" in printed.splitlines()[-1]
    # What the dashboard's demo mode reads back.
    assert len(store.generations("stage1", "before")) == 3
    assert {e["name"] for e in store.evaluations("stage5")} == {"perplexity_before", "perplexity_after"}
    assert store.result("stage2", "data_mess_report")["recipes"] == 3129
    assert [run["status"] for run in store.runs("train")] == ["finished"]
    assert store.metrics(store.runs("train")[0]["id"]), "training metrics were streamed to the store"
