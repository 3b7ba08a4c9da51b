"""The lab report export: every section, read from the store, escaped, self-contained."""
from __future__ import annotations

import re

import pytest

from dashboard.logic.report import NOT_DONE, SECTIONS, build_report_html
from lessons.engine.store import Store


@pytest.fixture
def store(tmp_path):
    # A store of its own in the tests' private lab home: nothing else's rows show up.
    with Store(tmp_path / "lab.sqlite", learner="ada") as opened:
        yield opened


def seed(store: Store) -> str:
    store.save_generation("stage1", "before", "base", "RECIPE: Toast\nINGREDIENTS:", " bread, bread, bread",
                          {"temperature": 0.0})
    store.put_result("stage2", "data_mess_report", {"recipes": 10, "kept": 7, "markup": {"wiki links": 3},
                                                   "removed": {"too short": 3}, "fields": {}})
    store.put_result("stage2", "cleaned_samples", [{"title": "Toast", "text": "RECIPE: Toast\nINGREDIENTS: bread\n"
                                                                             "DIRECTIONS: Toast it.\n[END]"}])
    store.put_result("stage3", "token_length_stats", {"median": 180.0, "share_longer": 0.12})
    run_id = store.start_run("train", {"rank": 8, "learning_rate": 2e-4, "max_steps": 3}, status="finished")
    for step, loss in ((1, 3.0), (2, 2.5), (3, 2.1)):
        store.log_metric(run_id, step, "train", loss=loss)
    store.log_metric(run_id, 3, "eval", loss=2.4)
    store.save_evaluation("stage5", "perplexity_before", 21.5, run_id=run_id, details={"recipes": 40})
    store.save_evaluation("stage5", "perplexity_after", 6.25, run_id=run_id, details={"recipes": 40})
    store.put_result("stage5", "evaluation", {"run": run_id, "comparisons": [
        {"prompt": "RECIPE: Toast\nINGREDIENTS:", "base": " bread bread", "finetuned": " 2 slices bread\n[END]"}]})
    store.save_generation("stage6", "custom", "base", "RECIPE: Soup", " hot water", {"temperature": 0.8})
    store.put_result("stage6", "sweep", [{"temperature": 0.8, "top_p": 0.9, "text": "soup soup", "repetition": 0.5}])
    store.save_answer("stage1", "q1", "Saffron split <script>alert('x')</script> & more")
    return run_id


def test_the_report_has_every_section_and_the_learners_results(store):
    run_id = seed(store)
    page = build_report_html(store)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert "bread, bread, bread" in page                       # the before output
    assert "DIRECTIONS: Toast it." in page                     # a cleaned sample
    assert "wiki links" in page and "<td>180</td>" in page           # the mess report, the token lengths
    assert f"Loss of run {run_id}" in page and "<polyline" in page  # the loss curve, as inline SVG
    assert "21.5" in page and "6.25" in page                   # perplexity before and after
    assert "2 slices bread" in page                            # side by side
    assert "hot water" in page and "soup soup" in page         # sampling experiments
    assert "Type a recipe title with an unusual ingredient" in page  # a question, with its answer below


def test_learner_text_is_escaped(store):
    seed(store)
    page = build_report_html(store)
    assert "<script>" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page


def test_the_report_is_self_contained(store):
    seed(store)
    page = build_report_html(store)
    assert not re.search(r"<(script|link|img|iframe)\b", page, re.IGNORECASE), "no external pieces"
    assert not re.search(r"https?://", page), "nothing to fetch from the network"
    assert "@import" not in page and "url(" not in page


def test_an_empty_store_says_what_is_missing(store):
    page = build_report_html(store)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, f"{title} must be there even when empty"
    for part in ("“before” generations", "data-mess report", "Cleaned, formatted samples", "Token-length statistics",
                 "Training runs", "Perplexity before and after", "Side-by-side generations", "sweep",
                 "Your answer"):
        assert part in page, part
    assert page.count(NOT_DONE) >= 10
    assert "0 of 8 stages pass" in page or "stages pass all their checks" in page


def test_tokenization_examples_come_from_the_given_tokenizer(store):
    from lessons.engine.tiny import real_tokenizer

    tokenizer = real_tokenizer()
    page = build_report_html(store, tokenizer=tokenizer)
    assert "Tokenization examples" in page and "saffron" in page
    assert "Tokenization examples (the base tokenizer could not be loaded)" not in page
    end_row = page[page.index("<td>[END]</td>"):].split("</tr>")[0]
    assert "<td>1</td>" in end_row, "[END] is one token, as stage 3 teaches, not 3 pieces: " + end_row
    assert "[END]" not in tokenizer.get_vocab(), "the tokenizer given is not changed"


def test_the_report_has_bleu_rouge_latency_and_the_blind_win_rate(store):
    from lessons.engine.blind_rating import blind_pairs, save_rating

    timing = {"ttft_ms": 41.5, "ms_per_token": 30.25, "total_ms": 980.0, "new_tokens": 32, "runs": 3, "device": "cpu"}
    result = {"run": "run-1", "comparisons": [
        {"prompt": "RECIPE: Toast\n", "base": " bread bread", "finetuned": " 2 slices bread\n[END]"},
        {"prompt": "RECIPE: Soup\n", "base": " soup soup", "finetuned": " water; salt\n[END]"}],
        "overlap": {"recipes": 2, "pairs": [], "base": {"bleu": 0.75, "rouge1": 0.1, "rouge2": 0.0, "rougeL": 0.08},
                    "finetuned": {"bleu": 11.5, "rouge1": 0.42, "rouge2": 0.2, "rougeL": 0.33}},
        "latency": {"base": timing, "finetuned": {**timing, "ms_per_token": 33.5}}}
    store.put_result("stage5", "evaluation", result)
    first, second = blind_pairs(result)
    save_rating(store, first, first.finetuned_is)  # the fine-tuned text wins one
    save_rating(store, second, "tie")
    page = build_report_html(store)
    section = page.split("<h2>Beyond perplexity: overlap, latency, blind rating</h2>", 1)[1].split("<h2>", 1)[0]
    assert "against 2 held-out recipes" in section and "<td>11.5</td>" in section and "<td>42</td>" in section, \
        "BLEU as it is, ROUGE-1 × 100"
    assert "<td>33.5</td>" in section and "32 new tokens per generation, median of 3 timed runs" in section
    assert "won 1, lost 0 and tied 1 of 2 rated pairs: a win rate of 75 %" in section


def test_an_empty_store_says_the_beyond_perplexity_measures_are_missing(store):
    page = build_report_html(store)
    section = page.split("<h2>Beyond perplexity: overlap, latency, blind rating</h2>", 1)[1].split("<h2>", 1)[0]
    for part in ("BLEU and ROUGE against held-out recipes", "Latency, base vs fine-tuned", "Your blind ratings"):
        assert part in section, part
