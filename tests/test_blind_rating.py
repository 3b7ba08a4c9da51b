"""The blind human evaluation's logic: pairs from an evaluation, a blind but reproducible A/B order, ratings
kept at once (a re-rating replaces), and the win rate's arithmetic (a tie is half a win)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lessons.engine.blind_rating import (blind_pairs, finetuned_label, save_rating, saved_ratings, win_rate,
                                         winner_of)
from lessons.engine.store import Store


def evaluation_result(prompts: int = 20) -> dict:
    """A stage 5 evaluation result as the job saves it: 3 side-by-side comparisons and BLEU/ROUGE pairs."""
    comparisons = [{"prompt": f"RECIPE: Dish {n}\n", "base": f" base text {n}", "finetuned": f" tuned text {n}\n[END]"}
                   for n in range(3)]
    pairs = [{"prompt": f"RECIPE: Held out {n}\n", "reference": "INGREDIENTS: x", "base": f" b{n}",
              "finetuned": f" f{n}"} for n in range(prompts - 3)]
    return {"run": "run-1", "comparisons": comparisons, "overlap": {"recipes": len(pairs), "pairs": pairs}}


def test_pairs_come_from_the_side_by_side_and_the_held_out_prompts():
    pairs = blind_pairs(evaluation_result())
    assert len(pairs) == 20 and pairs[0].prompt == "RECIPE: Dish 0\n" and pairs[3].prompt == "RECIPE: Held out 0\n"
    assert {pair.a for pair in pairs[:3]} | {pair.b for pair in pairs[:3]} == \
        {f" base text {n}" for n in range(3)} | {f" tuned text {n}\n[END]" for n in range(3)}
    assert blind_pairs(None) == []


def test_identical_texts_make_no_pair():
    result = evaluation_result()
    result["comparisons"][1]["finetuned"] = result["comparisons"][1]["base"]
    assert "RECIPE: Dish 1\n" not in [pair.prompt for pair in blind_pairs(result)]


def test_the_order_is_shuffled_yet_the_same_in_another_process():
    pairs = blind_pairs(evaluation_result())
    labels = [pair.finetuned_is for pair in pairs]
    assert set(labels) == {"A", "B"}, "the fine-tuned text is not always on the same side"
    for pair in pairs:
        assert (pair.a, pair.b) == ((pair.finetuned, pair.base) if pair.finetuned_is == "A" else
                                    (pair.base, pair.finetuned))
    ids = [pair.pair_id for pair in pairs]
    code = ("from lessons.engine.blind_rating import finetuned_label as f; import sys; "
            f"print(''.join(f(i) for i in {ids!r}))")
    elsewhere = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={"PYTHONHASHSEED": "123"}, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    assert elsewhere == "".join(labels), "a reload (a new process) shows the same order"
    assert finetuned_label(ids[0]) == labels[0]


def test_a_new_evaluation_makes_new_pairs():
    first = blind_pairs(evaluation_result())[0]
    changed = evaluation_result()
    changed["comparisons"][0]["finetuned"] = " another text"
    assert blind_pairs(changed)[0].pair_id != first.pair_id


def test_a_choice_decodes_to_the_model_behind_the_letter():
    pair = blind_pairs(evaluation_result())[0]
    other = "B" if pair.finetuned_is == "A" else "A"
    assert winner_of(pair, pair.finetuned_is) == "finetuned"
    assert winner_of(pair, other) == "base"
    assert winner_of(pair, "tie") == "tie"
    with pytest.raises(ValueError, match="one of A, B, tie"):
        winner_of(pair, "C")


def test_win_rate_counts_a_tie_as_half():
    assert win_rate([{"winner": "finetuned"}, {"winner": "tie"}, {"winner": "base"}, {"winner": "finetuned"}]) == \
        {"finetuned": 2, "base": 1, "tie": 1, "ratings": 4, "win_rate": 0.625}
    assert win_rate([{"winner": "tie"}])["win_rate"] == 0.5
    assert win_rate({})["win_rate"] is None


def test_each_rating_is_kept_at_once_and_a_re_rating_replaces(tmp_path):
    pairs = blind_pairs(evaluation_result())
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        save_rating(store, pairs[0], pairs[0].finetuned_is)
        save_rating(store, pairs[1], "tie")
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:  # a reload: a new connection
        ratings = saved_ratings(store)
        assert set(ratings) == {pairs[0].pair_id, pairs[1].pair_id}
        assert win_rate(ratings)["win_rate"] == 0.75
        save_rating(store, pairs[0], "B" if pairs[0].finetuned_is == "A" else "A")
        ratings = saved_ratings(store)
        assert len(ratings) == 2 and ratings[pairs[0].pair_id]["winner"] == "base"
        assert win_rate(ratings) == {"finetuned": 0, "base": 1, "tie": 1, "ratings": 2, "win_rate": 0.25}
