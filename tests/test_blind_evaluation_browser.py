"""The stage 5 page's blind evaluation in a real browser: press the rating buttons, see the models revealed and
the fine-tuned model's win rate; a reload keeps every rating.

The store is seeded with a finished evaluation (fixed texts, as the evaluation job saves them) instead of
running one: what is tested is the page's rating, which is the same whatever model wrote the texts; the job
itself is tested in tests/test_evaluation_job.py and walked in tests/test_dashboard_walk.py.
"""
from __future__ import annotations

import sys

import pytest

from lessons.engine.blind_rating import blind_pairs, win_rate, winner_of
from lessons.engine.evaluation import record_evaluation
from lessons.engine.store import Store
from tests.test_dashboard_browser import CHROMIUM, address, error_boxes, open_browser, serve_dashboard
from tests.test_dashboard_browser import screenshots  # noqa: F401 - the fixture: where screenshots go

RUN = "run-blind"
SIDE_BY_SIDE = {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.95, "seed": 0}


def evaluation_result() -> dict:
    """A stage 5 evaluation as the job saves it: 2 side-by-side prompts, 2 held-out prompts, BLEU/ROUGE, latency."""
    recipe = " 2 eggs; 1 cup milk\nDIRECTIONS: Whisk and fry.\n[END]"
    comparisons = [{"prompt": f"RECIPE: {title}\n", "base": f" is a word I like. {title} {title} {title}",
                    "finetuned": f"INGREDIENTS:{recipe}", "base_stopped": False, "finetuned_stopped": True,
                    "base_tokens": 64, "finetuned_tokens": 20} for title in ("Omelette", "Pancakes")]
    pairs = [{"prompt": f"RECIPE: {title}\n", "reference": "INGREDIENTS: 3 eggs\nDIRECTIONS: Beat the eggs.",
              "base": " Once upon a time", "finetuned": f"INGREDIENTS:{recipe}",
              "scores": {"base": {"bleu": 0.0}, "finetuned": {"bleu": 20.0}}} for title in ("Frittata", "Crepes")]
    overlap = {"recipes": 2, "pairs": pairs, "base": {"bleu": 0.5, "rouge1": 0.05, "rouge2": 0.0, "rougeL": 0.04},
               "finetuned": {"bleu": 12.0, "rouge1": 0.4, "rouge2": 0.2, "rougeL": 0.35}}
    timing = {side: {"ttft_ms": ttft, "ms_per_token": per, "total_ms": ttft + 31 * per, "new_tokens": 32, "runs": 3,
                     "device": "cpu", "samples": []} for side, ttft, per in (("base", 40.0, 30.0),
                                                                           ("finetuned", 45.0, 33.0))}
    return {"run": RUN, "perplexity_before": 17.5, "perplexity_after": 12.5, "recipes": 2, "comparisons": comparisons,
            "measures": {}, "overlap": overlap, "latency": timing}


def seed_evaluation(store: Store) -> dict:
    """Record ``evaluation_result`` for the training run ``RUN`` as the job would; return the result."""
    result = evaluation_result()
    measured = {"result": result, "generations": [],
                "evaluations": [{"name": "perplexity_before", "value": 17.5, "details": None},
                                {"name": "perplexity_after", "value": 12.5, "details": None}]}
    record_evaluation(store, RUN, measured, SIDE_BY_SIDE)
    return result


@pytest.fixture
def seeded_server(tmp_path):
    """The dashboard in demo mode, its store holding one finished evaluation (the demo learner's)."""
    serving = serve_dashboard(tmp_path, [sys.executable, "-m", "streamlit", "run", "dashboard/app.py"])
    url = next(serving)
    with Store(tmp_path / "home" / "lab.sqlite", learner="demo") as store:
        seed_evaluation(store)
    yield url
    next(serving, None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")
def test_rating_blind_pairs_reveals_the_models_and_the_win_rate(seeded_server, screenshots, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    pairs = blind_pairs(evaluation_result())
    assert len(pairs) == 4
    first, second = pairs[0], pairs[1]
    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, tmp_path, height=4000)
        page.goto(address(seeded_server, "stage5"))
        expect(page.get_by_text("Blind evaluation: which recipe is better?", exact=True)).to_be_visible()
        expect(page.get_by_text("Rated 0 of 4 pairs.", exact=False)).to_be_visible()
        expect(page.get_by_text("Revealed:", exact=False)).to_have_count(0)
        assert not page.get_by_text("A — ", exact=False).count(), "no model is named before a rating"
        expect(page.get_by_text("the models named (this tells the answers of blind pairs: 4 still to rate above)",
                                exact=False)).to_be_visible()  # the labelled side by side waits, folded
        expect(page.get_by_text("Word overlap with held-out recipes (BLEU, ROUGE)", exact=True)).to_be_visible()
        expect(page.get_by_text("Latency: how long a person waits", exact=True)).to_be_visible()

        def rate(pair, button: str) -> None:
            """Press ``button`` in ``pair``'s own box, and wait until the page says that pair was rated so."""
            box = page.locator(f".st-key-stage5_pair_{pair.pair_id}")
            box.get_by_role("button", name=button).click()
            expect(box.get_by_text(f"You rated: {button}.", exact=False)).to_be_visible()

        rate(first, "A is better")
        expect(page.get_by_text("Rated 1 of 4 pairs.", exact=False)).to_be_visible()
        revealed = f"Revealed: {first.finetuned_is} was the fine-tuned model"
        expect(page.get_by_text(revealed, exact=False)).to_be_visible()
        rate(second, "Tie")
        expect(page.get_by_text("Rated 2 of 4 pairs.", exact=False)).to_be_visible()
        expected = win_rate([{"winner": winner_of(first, "A")}, {"winner": "tie"}])
        sentence = f"a win rate of {100 * expected['win_rate']:.0f} %"
        expect(page.get_by_text(sentence, exact=False)).to_be_visible()
        expect(page.locator(".vega-embed").filter(has_text="Your blind ratings")).to_have_count(1)
        assert not error_boxes(page).count(), error_boxes(page).all_inner_texts()
        page.screenshot(path=str(screenshots / "stage5-blind.png"), full_page=True)

        page.reload()  # nothing lost: the ratings were saved when pressed
        expect(page.get_by_text("Rated 2 of 4 pairs.", exact=False)).to_be_visible()
        expect(page.get_by_text(sentence, exact=False)).to_be_visible()
        rate(second, "B is better")  # a re-rating replaces the tie
        expect(page.get_by_text("Rated 2 of 4 pairs.", exact=False)).to_be_visible()
        again = win_rate([{"winner": winner_of(first, "A")}, {"winner": winner_of(second, "B")}])
        expect(page.get_by_text(f"a win rate of {100 * again['win_rate']:.0f} %", exact=False)).to_be_visible()
        browser.close()
    with Store(tmp_path / "home" / "lab.sqlite", learner="demo") as store:
        from lessons.engine.blind_rating import saved_ratings
        assert {key: value["choice"] for key, value in saved_ratings(store).items()} == \
            {first.pair_id: "A", second.pair_id: "B"}
