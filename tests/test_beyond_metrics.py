"""BLEU/ROUGE on fixed strings with hand-checkable values, and latency measured on a tiny model.

The latency tests use a *tiny* Llama (2 layers, 64 wide, the real tokenizer; ``lessons/engine/tiny.py``):
what is tested is what the measurement returns (fields, counts, first token before the last), which is the
same at any size; SmolLM2 would take seconds per generation here. No timed assertion: speed is measured in
docs/benchmarks.md, not asserted.
"""
from __future__ import annotations

import pytest

from lessons.engine.beyond import (BeyondSettings, heldout_prompt, latency, latency_side_by_side, overlap_scores,
                                   without_end)
from lessons.engine.tiny import real_tokenizer, tiny_llama

REFERENCE = "INGREDIENTS: 2 cups flour; 1 egg; 1 cup milk\nDIRECTIONS: Whisk the egg into the milk, add the flour."


def test_an_identical_text_scores_100_bleu_and_1_rouge():
    scores = overlap_scores([REFERENCE], [REFERENCE])
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["rouge1"] == scores["rouge2"] == scores["rougeL"] == pytest.approx(1.0)
    assert scores["per_pair"][0]["bleu"] == pytest.approx(100.0)


def test_unrelated_text_scores_near_zero():
    scores = overlap_scores(["a quick brown fox jumps over lazy dogs"], [REFERENCE])  # no word in common
    assert scores["bleu"] < 1.0
    assert scores["rouge1"] == scores["rouge2"] == scores["rougeL"] == 0.0


def test_end_marker_is_not_counted_as_a_word():
    assert overlap_scores([REFERENCE + "\n[END]"], [REFERENCE])["bleu"] == pytest.approx(100.0)
    assert without_end(" boil it\n[END] and more") == "boil it"


def test_rouge_matches_a_hand_count_and_stems_words():
    # hypothesis "boil the eggs" vs reference "boiled the egg quickly": stemmed, all 3 hypothesis words match
    # 3 of 4 reference words: precision 1, recall 3/4, F1 = 2·1·0.75/1.75 = 6/7
    scores = overlap_scores(["boil the eggs"], ["boiled the egg quickly"])
    assert scores["rouge1"] == pytest.approx(6 / 7)
    assert scores["rougeL"] == pytest.approx(6 / 7)


def test_corpus_scores_average_rouge_over_pairs_and_reject_mismatched_lists():
    scores = overlap_scores([REFERENCE, "nothing alike here"], [REFERENCE, REFERENCE])
    assert scores["rouge1"] == pytest.approx((1.0 + scores["per_pair"][1]["rouge1"]) / 2)
    assert 0 < scores["bleu"] < 100
    with pytest.raises(ValueError, match="one reference each"):
        overlap_scores(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one pair"):
        overlap_scores([], [])


def test_a_held_out_recipe_splits_into_its_title_prompt_and_the_rest():
    prompt, reference = heldout_prompt("RECIPE: Pancakes\n" + REFERENCE + "\n[END]")
    assert prompt == "RECIPE: Pancakes\n" and reference == REFERENCE
    with pytest.raises(ValueError, match="title line and a body"):
        heldout_prompt("RECIPE: only a title")


def test_latency_times_exactly_the_asked_tokens_with_the_first_before_the_last():
    tokenizer = real_tokenizer()
    model = tiny_llama(tokenizer)  # tiny: the fields and counts are what is tested, not the speed
    measured = latency(model, tokenizer, "RECIPE: Tomato Soup\n", new_tokens=6, runs=2)
    assert measured["device"] == "cpu" and measured["runs"] == 2 and len(measured["samples"]) == 2, \
        "the warm-up is not among the samples"
    for sample in measured["samples"]:
        assert sample["new_tokens"] == 6
        assert 0 < sample["ttft_ms"] <= sample["total_ms"] and sample["ms_per_token"] > 0
    assert 0 < measured["ttft_ms"] <= measured["total_ms"]
    with pytest.raises(ValueError, match="at least 2 new tokens"):
        latency(model, tokenizer, "RECIPE: Soup\n", new_tokens=1)


def test_two_models_are_timed_in_turns_so_a_load_change_slows_both_alike():
    tokenizer = real_tokenizer()
    models = {"base": tiny_llama(tokenizer, seed=0), "finetuned": tiny_llama(tokenizer, seed=1)}  # tiny: order tested
    calls = []
    for name, model in models.items():
        def recording(*args, _name=name, _generate=model.generate, **kwargs):
            calls.append(_name)
            return _generate(*args, **kwargs)
        model.generate = recording
    measured = latency_side_by_side(models, tokenizer, "RECIPE: Soup\n", new_tokens=3, runs=3)
    # a warm-up each, then the timed runs, the order reversed every round
    assert calls == ["base", "finetuned", "finetuned", "base", "base", "finetuned", "finetuned", "base"]
    assert {name: len(m["samples"]) for name, m in measured.items()} == {"base": 3, "finetuned": 3}


def test_settings_are_small_on_a_cpu_and_real_on_a_gpu():
    cpu, gpu = BeyondSettings.for_device(cuda=False), BeyondSettings.for_device(cuda=True)
    assert cpu.overlap_recipes < gpu.overlap_recipes and cpu.latency_new_tokens < gpu.latency_new_tokens
    assert BeyondSettings(**cpu.as_dict()) == cpu, "the job's config carries them as a dict"
