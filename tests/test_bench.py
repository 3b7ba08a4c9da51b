"""The benchmark's machinery (``lessons/bench/``, measuring with ``lessons/engine/measure.py``) and the
padding-free path it measures.

Everything here runs a *tiny* Llama or GPT-2 (2 layers, 64 wide, the real
49,152-token tokenizer; ``lessons/engine/tiny.py``) on real fixture recipes.
Tiny because what is tested is bookkeeping and correctness (the table's shape,
which tokens count as useful, that packed recipes cannot see each other), which
does not depend on the model's size; the real SmolLM2 takes minutes per arm on
this CPU, the tiny one a second. No assertion is about time: timings on a shared
2-core machine prove nothing; the numbers belong in ``python -m lessons bench``.
"""
from __future__ import annotations

import json

import pytest
import torch

from lessons.bench import measurement, table
from lessons.bench.run import run_bench
from lessons.bench.settings import BenchSettings
from lessons.engine import measure
from lessons.engine.constants import END_MARKER, PROMPT_TEMPLATE
from lessons.engine.modules import load_stage_module
from lessons.engine.paths import DATA_DIR
from lessons.engine.speed import supports_packing
from lessons.engine.store import Store
from lessons.engine.tiny import real_tokenizer, tiny_gpt2, tiny_llama
from lessons.engine.training import init_end_from_eos

STAGES = ("stage2", "stage3", "stage4a", "stage4b")


def fixture_rows() -> list[dict]:
    lines = (DATA_DIR / "fixtures" / "formatted_recipes.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def tokenizer():
    return real_tokenizer()


@pytest.fixture(scope="module")
def recipe_rows(tokenizer):
    """Three real recipes of different lengths, cut to 80, 57 and 33 tokens (short: a fast tiny forward)."""
    texts = [row["text"] for row in fixture_rows()[:3]]
    rows = [ids[:limit] for ids, limit in zip(tokenizer(texts)["input_ids"], (80, 57, 33))]
    assert len({len(row) for row in rows}) > 1, "the test needs recipes of different lengths"
    return rows


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_packed_loss_equals_each_recipe_alone(make_model, tokenizer, recipe_rows):
    """Packed recipes attend only to themselves: the packed loss is the sum of each recipe's loss alone."""
    torch.manual_seed(0)
    model = make_model(tokenizer).eval()
    assert supports_packing(model)
    with torch.no_grad():
        packed_loss, packed_count = measure.summed_loss(model, measure.pack(recipe_rows))
        alone = [measure.summed_loss(model, measure.pad([row], tokenizer.pad_token_id)) for row in recipe_rows]
        padded_loss, padded_count = measure.summed_loss(model, measure.pad(recipe_rows, tokenizer.pad_token_id, 96))
    assert packed_count == sum(count for _, count in alone) == sum(len(row) - 1 for row in recipe_rows)
    assert packed_loss == pytest.approx(sum(loss for loss, _ in alone), rel=1e-4)
    assert (padded_loss, padded_count) == (pytest.approx(packed_loss, rel=1e-4), packed_count)
    # and the model's own mean loss on the packed batch is that sum over the labelled tokens
    with torch.no_grad():
        mean = model(**measure.pack(recipe_rows)).loss.item()
    assert mean == pytest.approx(packed_loss / packed_count, rel=1e-4)


def test_packing_without_boundaries_would_differ(tokenizer, recipe_rows):
    """The check above can fail: the same tokens as one long recipe (positions not restarting) give another loss."""
    torch.manual_seed(0)
    model = tiny_llama(tokenizer).eval()
    batch = measure.pack(recipe_rows)
    batch["position_ids"] = torch.arange(batch["input_ids"].shape[1]).unsqueeze(0)
    with torch.no_grad():
        joined, _ = measure.summed_loss(model, batch)
        packed, _ = measure.summed_loss(model, measure.pack(recipe_rows))
    assert joined != pytest.approx(packed, rel=1e-4)


def test_useful_tokens_exclude_padding(tokenizer, recipe_rows):
    """Useful tokens are the real ones: padding is neither counted nor labelled."""
    real = sum(len(row) for row in recipe_rows)
    padded = measure.pad(recipe_rows, tokenizer.pad_token_id, 128)
    assert padded["input_ids"].numel() == 3 * 128
    assert measure.useful_tokens(padded) == real
    assert int((padded["labels"] != measure.IGNORE_INDEX).sum()) == real
    packed = measure.pack(recipe_rows)
    assert measure.useful_tokens(packed) == real == packed["input_ids"].shape[1]
    assert measure.padding_share(recipe_rows, 128) == pytest.approx(1 - real / (3 * 128))
    assert measure.padding_share([[1] * 300], 256) == 0.0  # a cut row has no padding


def test_end_row_starts_as_eos(tokenizer):
    """init_end_from_eos copies the eos row into [END]'s row; tied output embeddings follow."""
    tok = real_tokenizer()
    model = tiny_llama(tok)
    load_stage_module("stage3", reference=True).configure_tokenizer(tok, model)
    end_id = tok.get_vocab()[END_MARKER]
    weights = model.get_input_embeddings().weight
    assert not torch.equal(weights[end_id], weights[tok.eos_token_id])
    report = init_end_from_eos(model, tok)
    assert report["end_id"] == end_id and report["eos_id"] == tok.eos_token_id
    assert torch.equal(weights[end_id], weights[tok.eos_token_id])
    assert torch.equal(model.get_output_embeddings().weight[end_id], weights[tok.eos_token_id])


def test_table_has_both_rows_and_the_ratio_last():
    """The table: a header, baseline, lab, then lab/baseline as the last line (n/a where the baseline is 0)."""
    arms = {"baseline": {"tokens_per_s": 100.0, "wall_seconds": 50.0, "step_seconds": 40.0, "added_mb": 1000.0,
                         "perplexity": 10.0, "stop_rate": 0.0},
            "lab": {"tokens_per_s": 250.0, "wall_seconds": 25.0, "step_seconds": 20.0, "added_mb": 900.0,
                    "perplexity": 8.0, "stop_rate": 1.0}}
    lines = table.format_table(arms).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["baseline", "lab", "lab/baseline"]
    assert lines[-1].split()[1:6] == ["2.50x", "0.50x", "0.50x", "0.90x", "0.80x"]
    assert "n/a" in lines[-1]


def test_a_bigger_budget_samples_the_same_first_tokens(tokenizer):
    """The bench reads "stopped within 320 tokens" off generations of up to 512: that is only the stop rate a
    320-token run would give if sampling with the same seed writes the same first tokens whatever the budget."""
    torch.manual_seed(0)
    model = tiny_llama(tokenizer)
    prompts = [PROMPT_TEMPLATE.format(title=title) for title in ("Lentil Soup", "Apple Pie")]
    sampled = dict(temperature=0.9, top_p=0.95, samples=2, seed=3)
    short = measure.generate(model, tokenizer, prompts, max_new_tokens=6, **sampled)
    long = measure.generate(model, tokenizer, prompts, max_new_tokens=14, **sampled)
    assert short["new_tokens"] == [6, 6, 6, 6] and long["new_tokens"] == [14, 14, 14, 14]  # the tiny model never stops
    assert [row[:6] for row in long["ids"]] == short["ids"]
    assert len({tuple(row) for row in long["ids"]}) > 1, "sampled, not greedy: the samples differ"


def test_measuring_in_bf16_gives_the_model_back_in_float32(tokenizer):
    """The stop rate is sampled with the frozen weights in bf16; the model measured afterwards (the padded vs
    packed evaluation) must be the float32 one again, every weight exactly as it was."""
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(tiny_llama(tokenizer), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                             task_type=TaskType.CAUSAL_LM))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    texts = [row["text"] for row in fixture_rows()[:3]]
    prompts = [PROMPT_TEMPLATE.format(title="Lentil Soup")]
    settings = BenchSettings(max_new_tokens=4, short_budget=2, samples_per_prompt=2)
    arm = measurement.measure_arm({"model": model}, tokenizer, texts, prompts, settings, "tiny", bf16=True)
    assert arm["generation_precision"] == "bfloat16" and arm["generations_count"] == 2
    after = arm["model"].state_dict()
    assert all(after[name].dtype == value.dtype and torch.equal(after[name], value) for name, value in before.items())


def test_stop_rate_within_counts_ends_among_the_first_tokens():
    result = {"stopped_at_end": [True, True, False, True], "new_tokens": [5, 9, 12, 12]}
    assert measure.stop_rate_within(result, 8) == 0.25
    assert measure.stop_rate_within(result, 9) == 0.5   # [END] as the 9th new token is within 9
    assert measure.stop_rate_within(result, 12) == 0.75


def test_recipe_lengths_count_the_tokens_after_the_prompt(tokenizer):
    """What a generation must write to finish a recipe: everything after "RECIPE: title\nINGREDIENTS:"."""
    texts = [row["text"] for row in fixture_rows()[:3]]
    lengths = measurement.recipe_lengths_after_prompt(tokenizer, texts)
    for text, length in zip(texts, lengths):
        prompt = text[:text.index("INGREDIENTS:") + len("INGREDIENTS:")]
        assert 0 < length < len(tokenizer(text)["input_ids"])
        assert tokenizer.decode(tokenizer(text)["input_ids"][-length:]).strip().endswith(END_MARKER)
        assert tokenizer.decode(tokenizer(text)["input_ids"][:-length]) == prompt


def test_bench_end_to_end_on_a_tiny_model(tmp_path, tokenizer, capsys):
    """One tiny bench: both arms train, both are measured, the table prints last and the store has it."""
    rows = fixture_rows()
    train_texts = [row["text"] for row in rows[:8]]
    heldout = [row["text"] for row in rows[8:10]]
    prompts = [PROMPT_TEMPLATE.format(title=row["title"]) for row in rows[10:12]]
    settings = BenchSettings(n_train=8, n_heldout=2, n_prompts=2, max_new_tokens=6, short_budget=3,
                                   batch_size=4, learning_rate=1e-3, rank=4, alpha=8, ladder_steps=1,
                                   compare_tokens=4, compare_size=1, epochs=2)
    modules = {key: load_stage_module(key, reference=True) for key in STAGES}

    def load_model():
        tok = real_tokenizer()
        torch.manual_seed(0)
        return tiny_llama(tok), tok

    with Store(tmp_path / "lab.sqlite", learner="tests") as store:
        results = run_bench(settings, load_model=load_model, train_texts=train_texts, heldout_texts=heldout,
                                  prompts=prompts, modules=modules, store=store, work_dir=tmp_path / "work")
        saved = store.result("stage4b", "bench")
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("lab/baseline")
    assert printed[-3].startswith("baseline") and printed[-2].startswith("lab")
    baseline, lab = results["arms"]["baseline"], results["arms"]["lab"]
    real = sum(len(ids) for ids in tokenizer(train_texts)["input_ids"])  # [END] is plain text to this tokenizer
    assert baseline["steps"] == lab["steps"] == 4  # 8 recipes in batches of 4, twice over (epochs=2)
    assert lab["useful_tokens"] >= baseline["useful_tokens"]
    assert baseline["computed_tokens"] == 2 * 8 * 256
    # grouped by length, padded to each batch's longest (with 8 recipes transformers' sampler groups hardly at all)
    assert 0.0 <= lab["padding_share"] < 1 and lab["packed"] is False
    assert lab["computed_tokens"] >= lab["useful_tokens"]
    assert lab["useful_tokens"] <= 2 * (real + 8)  # the configured tokenizer makes [END] one token: never more
    configured = real_tokenizer()  # with [END] as one token, as both arms have it
    modules["stage3"].configure_tokenizer(configured, tiny_llama(configured))
    assert baseline["useful_tokens"] == 2 * sum(min(len(ids), 256) for ids in configured(train_texts)["input_ids"])
    for arm in (baseline, lab):
        assert arm["perplexity"] > 1 and 0 <= arm["stop_rate"] <= 1 and arm["peak_mb"] > 0
        assert 0 <= arm["stop_rate_short"] <= arm["stop_rate"]
        assert arm["generation_precision"] == lab["precision"]  # both arms generate as the lab trains
        assert all(0 < generation["new_tokens"] <= 6 for generation in saved["generations"]["baseline"])
    # the real recipes' share within each budget: what a model writing them exactly would score
    assert set(results["recipes_within"]) == {"3", "6"}  # short_budget=3, max_new_tokens=6
    assert results["recipes_within"]["3"] <= results["recipes_within"]["6"] <= 1
    assert any(line.startswith("stop at [END] within 3 new tokens") for line in printed)
    ladder = [rung["rung"] for rung in results["ladder"]]
    assert ladder[0].endswith("(baseline)") and ladder[1].startswith("+ batches grouped")
    assert "the lab's default" in ladder[-4] and len(ladder) == 12
    assert all(rung["tokens_per_s"] > 0 for rung in results["ladder"])
    assert saved["table"] == results["table"] and set(saved["arms"]) == {"baseline", "lab"}
    # the arithmetic per second of both arms, and no peak claimed for a CPU
    assert baseline["flops_per_s"] > 0 and lab["flops_per_s"] > 0 and lab["model_flops"] >= baseline["model_flops"]
    arithmetic = next(line for line in printed if line.startswith("model arithmetic"))
    assert torch.cuda.is_available() or "no peak known" in arithmetic
    assert not any("model" in arm for arm in saved["arms"].values()), "numbers only, no model in the store"
    assert results["eval"]["packed"]["perplexity"] == pytest.approx(results["eval"]["padded"]["perplexity"],
                                                                    rel=1e-3)
    assert results["eval"]["padded"]["computed_tokens"] == 768  # compare_size=1: one recipe padded to 768
    assert results["generation"]["one_by_one_kv"]["tokens"] <= 4  # one prompt, compare_tokens=4
    # the stage 4B page draws it: padding, tokens/s, time per epoch, stops, and the ladder
    from dashboard.results.stage4b import bench_charts, bench_rows

    rows = bench_rows(saved)
    assert [row["arm"] for row in rows["arms"]] == ["original assignment", "LoRA Kitchen"]
    assert rows["arms"][0]["padding_share"] > 0 and rows["arms"][1]["padding_share"] >= 0
    assert rows["arms"][0]["epoch_seconds"] == pytest.approx(baseline["step_seconds"] / 2)  # two epochs ran
    charts = bench_charts(saved)
    assert len(charts) == 5 and all(chart.to_dict()["data"] for chart in charts)
    assert charts[3].to_dict()["title"] == "Generations that stop at [END] within 6 new tokens"
    # each bar gets its height (a fixed chart height squashed the two bars to lines in the browser)
    assert all(chart.to_dict()["height"] == {"step": 30} for chart in charts[:4])


def test_fast_trainable_tokens_give_the_same_outputs_and_gradients(tokenizer):
    """speed_up_trainable_tokens changes how peft computes the [END] row, not what: same logits, same gradients."""
    from peft import LoraConfig, TaskType, get_peft_model
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from lessons.engine import speed

    tok = real_tokenizer()
    torch.manual_seed(0)
    model = tiny_llama(tok)
    load_stage_module("stage3", reference=True).configure_tokenizer(tok, model)
    end_id = tok.get_vocab()[END_MARKER]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type=TaskType.CAUSAL_LM,
                        trainable_token_indices={"embed_tokens": [end_id]})
    lora_model = get_peft_model(model, config)
    assert type(lora_model.get_output_embeddings()).__name__ == "TrainableTokensWrapper"  # tied: output side too
    with torch.no_grad():  # a trained-looking row, far from the original
        for name, parameter in lora_model.named_parameters():
            if "trainable_tokens_delta" in name:
                parameter.add_(torch.randn_like(parameter))
    ids = torch.tensor([tok(f"RECIPE: Toast\nDIRECTIONS: Toast it.\n{END_MARKER} more {END_MARKER}")["input_ids"]])

    def forward_backward():
        lora_model.zero_grad()
        output = lora_model(input_ids=ids, labels=ids)
        output.loss.backward()
        return output.logits.detach(), {name: parameter.grad.clone() for name, parameter in
                                        lora_model.named_parameters() if parameter.requires_grad}

    original = TrainableTokensLayer.forward_adapters
    saved = speed._ORIGINAL_TRAINABLE_TOKENS_FORWARD
    try:
        if saved is not None:  # already patched in this process: measure against peft's own
            TrainableTokensLayer.forward_adapters = saved
            speed._ORIGINAL_TRAINABLE_TOKENS_FORWARD = None
        slow_logits, slow_grads = forward_backward()
        assert speed.speed_up_trainable_tokens()
        assert TrainableTokensLayer.forward_adapters is not (saved or original)
        fast_logits, fast_grads = forward_backward()
    finally:
        if saved is not None:
            TrainableTokensLayer.forward_adapters, speed._ORIGINAL_TRAINABLE_TOKENS_FORWARD = original, saved
    assert torch.allclose(slow_logits, fast_logits, atol=1e-4)
    assert any("trainable_tokens_delta" in name for name in slow_grads)
    for name, gradient in slow_grads.items():
        assert torch.allclose(gradient, fast_grads[name], atol=1e-5), name


def test_the_trainable_tokens_replacement_is_checked_against_the_installed_peft():
    """The replacement reaches into peft's TrainableTokensLayer, which is no public API: it is applied only to
    a peft inside TRAINABLE_TOKENS_PEFT whose forward_adapters takes the parameters it was written for."""
    from lessons.engine import speed

    problem = speed.trainable_tokens_patch_problem()
    assert problem is None, (f"{problem}. Compare lessons/engine/speed.py's forward_adapters with this peft's "
                             "(test_fast_trainable_tokens_give_the_same_outputs_and_gradients), then widen "
                             "TRAINABLE_TOKENS_PEFT")
    assert "outside" in speed.trainable_tokens_patch_problem(version="0.22.0")

    class ChangedSignature:
        def forward_adapters(self, x, adapter_names, *args, **kwargs):
            return x

        def _get_embed_scale(self):
            return None

    class NoEmbedScale:
        def forward_adapters(self, x, active_adapters, *args, **kwargs):
            return x

    assert "forward_adapters takes" in speed.trainable_tokens_patch_problem(layer=ChangedSignature)
    assert "_get_embed_scale" in speed.trainable_tokens_patch_problem(layer=NoEmbedScale)


def test_an_unchecked_peft_runs_its_own_code_with_one_warning(monkeypatch):
    import warnings

    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from lessons.engine import speed

    monkeypatch.setattr(speed, "trainable_tokens_patch_problem", lambda: "peft 9.9.9 is outside >=0.21.2,<0.22")
    monkeypatch.setattr(speed, "_ORIGINAL_TRAINABLE_TOKENS_FORWARD", None)
    monkeypatch.setattr(speed, "_TRAINABLE_TOKENS_WARNED", False)
    before = TrainableTokensLayer.forward_adapters
    with pytest.warns(RuntimeWarning, match="peft 9.9.9 is outside .*peft's own"):
        assert not speed.speed_up_trainable_tokens()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        assert not speed.speed_up_trainable_tokens()
    assert TrainableTokensLayer.forward_adapters is before


@pytest.fixture
def peft_own_trainable_tokens():
    """peft's own TrainableTokensLayer forward during the test (whatever ran before in this process); put back after."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from lessons.engine import speed

    before = TrainableTokensLayer.forward_adapters, speed._ORIGINAL_TRAINABLE_TOKENS_FORWARD
    if before[1] is not None:
        TrainableTokensLayer.forward_adapters, speed._ORIGINAL_TRAINABLE_TOKENS_FORWARD = before[1], None
    yield TrainableTokensLayer.forward_adapters
    TrainableTokensLayer.forward_adapters, speed._ORIGINAL_TRAINABLE_TOKENS_FORWARD = before


def saved_run_with_a_trained_end_row(folder) -> tuple:
    """(base folder, adapter folder) as a finished tiny run leaves them: LoRA plus the trainable [END] row, and
    the run's splits beside the adapter. Tiny (2 layers, 64 wide): what is tested is which code computes it."""
    from datasets import Dataset, DatasetDict
    from peft import LoraConfig, get_peft_model

    tok = real_tokenizer()
    tiny_llama(tok).save_pretrained(folder / "base")
    tok.save_pretrained(folder / "base")
    model = tiny_llama(tok)
    load_stage_module("stage3", reference=True).configure_tokenizer(tok, model)
    adapted = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                               trainable_token_indices={"embed_tokens": [tok.get_vocab()[END_MARKER]]}))
    adapted.save_pretrained(folder / "run" / "adapter")
    tok.save_pretrained(folder / "run" / "adapter")
    rows = fixture_rows()
    (folder / "run" / "splits").mkdir(parents=True)
    for name, part in DatasetDict({"train": Dataset.from_list(rows[:4]),
                                   "validation": Dataset.from_list(rows[4:6])}).items():
        part.to_json(str(folder / "run" / "splits" / f"{name}.jsonl"), lines=True)
    return folder / "base", folder / "run" / "adapter"


def test_a_trained_run_loaded_for_generation_computes_its_end_row_the_fast_way(peft_own_trainable_tokens, tmp_path):
    """Chat and stage 6 load a run with load_trained_model: peft's matrix rebuild per token is replaced first."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from lessons.engine.trained import load_trained_model

    base, adapter = saved_run_with_a_trained_end_row(tmp_path)
    model, _ = load_trained_model(adapter, str(base))
    assert any(isinstance(module, TrainableTokensLayer) for module in model.modules()), "the [END] row came back"
    assert TrainableTokensLayer.forward_adapters is not peft_own_trainable_tokens


def test_stage5s_evaluation_measures_the_fine_tuned_model_with_the_fast_end_row(peft_own_trainable_tokens, tmp_path):
    """Its latency compares the models, not peft's rebuild of the embedding matrix at every token."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from lessons.engine.evaluation import EVALUATION_STAGES, evaluate_run

    base, adapter = saved_run_with_a_trained_end_row(tmp_path)
    modules = {key: load_stage_module(key, reference=True) for key in EVALUATION_STAGES}
    asked = iter([False, True])  # stop after the first phase: the models are loaded by then
    run = {"id": "fast-end", "config": {"model": str(base), "max_length": 64}}
    assert evaluate_run(modules, run, adapter=adapter, eval_recipes=1, side_by_side={},
                        should_stop=lambda: next(asked)) is None
    assert TrainableTokensLayer.forward_adapters is not peft_own_trainable_tokens
