"""The training engine end to end: metrics in the store, the adapter saved, cancel, resume.

Every run here trains a *tiny* Llama (2 layers, 64 wide, the real 49,152-token
tokenizer; ``lessons/engine/tiny.py``) on 8 real recipes of at most 96 tokens for a
few steps, with the reference solutions of stages 2 to 4B. Tiny because what
is tested is the plumbing (callbacks, store, checkpoints, adapter files), which
works the same at any size; a real SmolLM2 step takes seconds, a tiny one
milliseconds, so the whole file runs in well under a minute on a 2-core CPU.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from lessons.engine.modules import load_stage_module
from lessons.engine.paths import DATA_DIR
from lessons.engine.store import Store
from lessons.engine.tiny import real_tokenizer, tiny_llama
from lessons.engine.training import (ADAPTER, CHECKPOINTS, TrainSettings, last_checkpoint, prepare_data, run_training,
                                     saved_splits)

STAGES = ("stage2", "stage3", "stage4a", "stage4b")
N_RECIPES = 8        # 6 train + 2 validation: three batches of 2 make one epoch
MAX_LENGTH = 96      # short rows: fast steps; four of the eight recipes are shorter, so there is padding
TRAIN_ROWS, VALIDATION_ROWS = (8, 0, 21, 1, 29, 2), (34, 3)  # lines of the fixture file


@pytest.fixture(scope="module")
def modules():
    return {key: load_stage_module(key, reference=True) for key in STAGES}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lab.sqlite", learner="tests") as opened:
        yield opened


def fixture_splits():
    """Eight formatted fixture recipes, split 6 / 2 (no stage 2 involved)."""
    from datasets import Dataset, DatasetDict

    lines = (DATA_DIR / "fixtures" / "formatted_recipes.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return DatasetDict({"train": Dataset.from_list([rows[i] for i in TRAIN_ROWS]),
                        "validation": Dataset.from_list([rows[i] for i in VALIDATION_ROWS])})


def tiny_settings(**overrides) -> TrainSettings:
    values = dict(n_recipes=N_RECIPES, test_size=0.25, max_length=MAX_LENGTH, rank=4, alpha=8, batch_size=2,
                  learning_rate=5e-3, max_steps=6, eval_every=2, seed=0)
    return TrainSettings(**{**values, **overrides})


def tiny_model_and_tokenizer():
    tokenizer = real_tokenizer()
    return tiny_llama(tokenizer, seed=0), tokenizer


def test_a_tiny_run_streams_metrics_and_saves_the_adapter(modules, store, tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    run_id = store.start_run("train", {}, status="queued")
    settings = tiny_settings(max_steps=3)  # one epoch exactly: every training token is seen once
    summary = run_training(settings, store=store, run_id=run_id, modules=modules, output_dir=tmp_path / "run",
                           model=model, tokenizer=tokenizer, splits=fixture_splits())

    metrics = store.metrics(run_id)
    train = [m for m in metrics if m["split"] == "train"]
    validation = [m for m in metrics if m["split"] == "validation"]
    assert [m["step"] for m in train] == [1, 2, 3]
    assert all(math.isfinite(m["loss"]) and m["learning_rate"] > 0 and m["tokens_per_s"] > 0 for m in train)
    assert train[-1]["eta_s"] == pytest.approx(0.0) and train[0]["eta_s"] > 0
    # evaluated at step 2 (eval_every) and once more at the end, so the curve ends on a validation point
    assert [m["step"] for m in validation] == [2, 3]
    assert validation[-1]["perplexity"] == pytest.approx(math.exp(validation[-1]["loss"]))

    # tokens per second count real tokens only: after one epoch, the sum of the training attention masks
    stage3 = modules["stage3"]
    texts = list(fixture_splits()["train"]["text"])
    real_tokens = sum(map(sum, stage3.tokenize_function({"text": texts}, tokenizer, MAX_LENGTH)["attention_mask"]))
    assert real_tokens < len(texts) * MAX_LENGTH, "the fixture should contain some padding"
    assert summary["tokens_seen"] == real_tokens == train[-1]["tokens_seen"]

    run = store.run(run_id)
    assert run["status"] == "finished" and run["summary"]["steps"] == 3 and run["summary"]["completed"]
    assert run["summary"]["eval_loss"] == pytest.approx(validation[-1]["loss"])
    assert summary["target_modules"] == ["q_proj", "v_proj"]
    # the default path: batches grouped by length (little padding), the loss a slice at a time
    assert summary["group_by_length"] and not summary["packed"] and summary["chunked_loss"]
    assert 0 <= summary["padding_share"] < 1
    assert summary["model"] is not None and "model" not in run["summary"]  # the model goes back to the caller only

    adapter = tmp_path / "run" / ADAPTER
    files = {path.name: path.stat().st_size for path in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(files)
    base_bytes = sum(p.numel() * 4 for p in tiny_llama(real_tokenizer()).parameters())
    assert files["adapter_model.safetensors"] < base_bytes / 20
    assert last_checkpoint(tmp_path / "run") is not None
    kept = saved_splits(tmp_path / "run")  # stage 5 evaluates on exactly these held-out recipes
    assert kept["validation"]["text"] == fixture_splits()["validation"]["text"]
    assert kept["train"]["title"] == fixture_splits()["train"]["title"]
    assert run["summary"]["held_out_rows"] == len(VALIDATION_ROWS)

    # The adapter is the whole story: on a fresh base (its [END] row drawn anew by stage 3) it
    # reproduces the trained model exactly, because the [END] row was trained and saved with it.
    from peft import PeftModel

    fresh, fresh_tokenizer = tiny_model_and_tokenizer()
    torch.manual_seed(123)
    stage3.configure_tokenizer(fresh_tokenizer, fresh)
    reloaded = PeftModel.from_pretrained(fresh, str(adapter)).eval()
    trained = summary["model"].eval()
    batch = tokenizer(["RECIPE: Toast\nINGREDIENTS: bread\n[END]"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, trained.cpu()(**batch).logits, atol=1e-5)


def test_cancel_keeps_the_curve_and_resume_goes_on(modules, store, tmp_path):
    run_id = store.start_run("train", {}, status="queued")
    output_dir = tmp_path / "run"
    settings = tiny_settings(max_steps=6, eval_every=2)

    def stop_after_step_two() -> bool:  # as the dashboard's cancel button would, mid-run
        return any(m["step"] >= 2 for m in store.metrics(run_id))

    model, tokenizer = tiny_model_and_tokenizer()
    first = run_training(settings, store=store, run_id=run_id, modules=modules, output_dir=output_dir,
                         should_stop=stop_after_step_two, model=model, tokenizer=tokenizer, splits=fixture_splits())
    stopped_at = first["steps"]
    assert 2 <= stopped_at < 6 and first["cancelled"] and not first["completed"]
    run = store.run(run_id)
    assert run["status"] == "cancelled" and "resume" in run["reason"]
    kept = store.metrics(run_id)
    assert [m["step"] for m in kept if m["split"] == "train"] == list(range(1, stopped_at + 1))
    assert last_checkpoint(output_dir).name == f"checkpoint-{stopped_at}"  # saved on the way out

    # A new process: a fresh model and tokenizer, the same settings, resume=True.
    model, tokenizer = tiny_model_and_tokenizer()
    second = run_training(settings, store=store, run_id=run_id, modules=modules, output_dir=output_dir,
                          resume=True, model=model, tokenizer=tokenizer, splits=fixture_splits())
    assert second["resumed_from_step"] == stopped_at and second["steps"] == 6 and second["completed"]
    assert store.run(run_id)["status"] == "finished"
    train = [m for m in store.metrics(run_id) if m["split"] == "train"]
    assert [m["step"] for m in train] == list(range(1, 7))  # one curve: no step twice, none missing
    assert [m["t"] for m in train[:stopped_at]] == [m["t"] for m in kept if m["split"] == "train"]  # old points kept
    assert (output_dir / CHECKPOINTS / "checkpoint-6").exists() and (output_dir / ADAPTER).exists()

    # Resuming is exact: the same numbers as a run that was never interrupted.
    model, tokenizer = tiny_model_and_tokenizer()
    uninterrupted = run_training(settings, store=store, run_id="uninterrupted", modules=modules,
                                 output_dir=tmp_path / "uninterrupted", model=model, tokenizer=tokenizer,
                                 splits=fixture_splits())
    assert second["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=1e-5)
    assert second["eval_loss"] == pytest.approx(uninterrupted["eval_loss"], rel=1e-5)


def test_every_stage_runs_from_raw_recipes(modules, store, tmp_path):
    """Stage 2 loads and prepares the data itself (a 13-recipe RecipeNLG sample, 8 used)."""
    model, tokenizer = tiny_model_and_tokenizer()
    run_id = "from-raw"
    settings = tiny_settings(source=str(DATA_DIR / "recipenlg_sample.csv"), max_steps=2, eval_every=5)
    summary = run_training(settings, store=store, run_id=run_id, modules=modules, output_dir=tmp_path / "run",
                           model=model, tokenizer=tokenizer)
    assert summary["n_train"] + summary["n_validation"] == N_RECIPES and summary["steps"] == 2
    run = store.run(run_id)  # created by run_training, since no one had started it
    assert run["kind"] == "train" and run["status"] == "finished"
    assert run["summary"]["tokenizer"]["end_token"] == "[END]"


def test_a_data_size_larger_than_the_source_says_how_many_recipes_the_run_uses(modules, capsys):
    sample = str(DATA_DIR / "recipenlg_sample.csv")  # 13 rows, some of them too messy to keep
    splits = prepare_data(tiny_settings(source=sample, n_recipes=500), modules["stage2"])
    used = len(splits["train"]) + len(splits["validation"])
    assert 2 <= used < 13
    assert f"500 recipes asked for, but {sample!r} has {used} usable ones: this run uses all {used}" in \
        capsys.readouterr().out
    prepare_data(tiny_settings(source=sample, n_recipes=used), modules["stage2"])
    assert "asked for" not in capsys.readouterr().out, "a size the source holds is used as asked: no note"


def test_a_failure_marks_the_run_failed(modules, store, tmp_path):
    from lessons.engine.todo import NotImplementedYet

    pristine = {**modules, "stage4a": load_stage_module("stage4a", reference=False)}  # the untouched learner file
    model, tokenizer = tiny_model_and_tokenizer()
    run_id = store.start_run("train", {}, status="queued")
    with pytest.raises(NotImplementedYet):
        run_training(tiny_settings(), store=store, run_id=run_id, modules=pristine, output_dir=tmp_path / "run",
                     model=model, tokenizer=tokenizer, splits=fixture_splits())
    run = store.run(run_id)
    assert run["status"] == "failed" and "not implemented yet" in run["reason"]


def test_frozen_weights_kept_in_bf16_come_back_exactly():
    """While training the frozen weights are bfloat16 and the adapter float32; afterwards every number is back."""
    from peft import LoraConfig, get_peft_model

    from lessons.engine.speed import FrozenInBf16

    model = get_peft_model(tiny_llama(real_tokenizer(), seed=0),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    with FrozenInBf16(model):
        dtypes = {(parameter.requires_grad, parameter.dtype) for parameter in model.parameters()}
        assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}
    for name, parameter in model.named_parameters():
        assert parameter.dtype == torch.float32 and torch.equal(parameter, before[name]), name


def test_right_padding_needs_no_attention_mask():
    """A causal model's loss is the same with or without the mask when padding is on the right; left keeps it."""
    from lessons.engine.speed import without_right_padding_mask

    tokenizer = real_tokenizer()
    model = tiny_llama(tokenizer, seed=0).eval()
    modules_ = {"stage4a": load_stage_module("stage4a", reference=True)}
    collator = modules_["stage4a"].make_collator(tokenizer)
    rows = [tokenizer(text)["input_ids"] for text in ("RECIPE: Toast\nINGREDIENTS: bread; butter",
                                                      "RECIPE: Tea\nINGREDIENTS: water")]
    batch = collator([{"input_ids": row} for row in rows])
    assert batch["attention_mask"].sum() < batch["attention_mask"].numel(), "the second row should be padded"
    unmasked = without_right_padding_mask(batch)
    assert "attention_mask" not in unmasked and "attention_mask" in batch
    with torch.no_grad():
        assert model(**unmasked).loss == pytest.approx(float(model(**batch).loss), abs=1e-6)
    left = dict(batch, attention_mask=batch["attention_mask"].flip(-1))
    assert "attention_mask" in without_right_padding_mask(left)


def test_length_grouped_order_makes_batches_of_one_length_in_random_order():
    """Every batch holds neighbours in length; the batch order changes with the seed; nothing lost or doubled."""
    import random

    from lessons.engine.speed import length_grouped_order

    rng = random.Random(1)
    lengths = [rng.randint(20, 760) for _ in range(130)]
    order = length_grouped_order(lengths, batch_size=4, seed=0)
    assert sorted(order) == list(range(130))
    batches = [order[start:start + 4] for start in range(0, 130, 4)]
    chunks = sorted(lengths)
    chunks = {tuple(chunks[start:start + 4]) for start in range(0, 130, 4)}
    for batch in batches:  # each batch is one chunk of the recipes sorted by length
        assert tuple(sorted(lengths[i] for i in batch)) in chunks
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    assert 1 - sum(lengths) / padded < 0.05
    first_lengths = [lengths[batch[0]] for batch in batches]
    assert first_lengths != sorted(first_lengths), "the batches should come in shuffled order"
    assert length_grouped_order(lengths, 4, seed=0) == order != length_grouped_order(lengths, 4, seed=1)
