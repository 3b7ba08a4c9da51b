"""Stage 3 checks: pad token, [END] as one special token, padding, truncation, attention masks, lengths.

Fixed inputs only: the 48 formatted recipes of ``data/fixtures/formatted_recipes.jsonl``
(never your stage 2), SmolLM2's real tokenizer, and a tiny 2-layer Llama with the
real vocabulary (see ``lessons/engine/tiny.py``): tiny so a check runs in a second.
"""
from __future__ import annotations

import json
import statistics
from functools import lru_cache

import torch

from checks.teacher import call, expect
from lessons.engine.constants import END_MARKER
from lessons.engine.paths import DATA_DIR

FIXTURE = DATA_DIR / "fixtures" / "formatted_recipes.jsonl"
SHORT_MAX = 64  # the shortest fixture recipe has 62 tokens: at 64 nearly every row is cut, so truncation shows


@lru_cache(maxsize=1)
def _rows() -> tuple[dict, ...]:
    return tuple(json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip())


def recipe_texts(n: int | None = None) -> list[str]:
    return [row["text"] for row in _rows()[:n]]


def with_end_token(tokenizer):
    """The tokenizer as configure_tokenizer leaves it, made here so these checks do not depend on yours."""
    tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    return tokenizer


# -- configure_tokenizer -------------------------------------------------------------------
def test_configure_tokenizer_sets_a_missing_pad_token(lesson, tokenizer, tiny_model):
    """configure_tokenizer gives a tokenizer without a pad token (like GPT-2's) its eos token as pad."""
    tokenizer.pad_token = None  # SmolLM2 has one already; GPT-2, as in the original assignment, has none
    report = call(lesson.configure_tokenizer, tokenizer, tiny_model)
    expect(tokenizer.pad_token is not None, lesson.configure_tokenizer,
           "the tokenizer still has no pad token, so a batch of different lengths cannot be padded.",
           expected=tokenizer.eos_token, got=tokenizer.pad_token,
           hint="Which token already means 'the text is over', and how do you make it the pad token?")
    expect(tokenizer.pad_token == tokenizer.eos_token, lesson.configure_tokenizer,
           "the pad token should be the eos token, as the original assignment does.",
           expected=tokenizer.eos_token, got=tokenizer.pad_token)
    expect(isinstance(report, dict), lesson.configure_tokenizer, "it must return a report dict.",
           expected="{'pad_token': ..., 'end_token_id': ..., ...}", got=report)
    expect(report.get("pad_token") == tokenizer.eos_token and report.get("pad_was_missing") is True,
           lesson.configure_tokenizer, "the report should say which pad token was set, and that it was missing.",
           expected={"pad_token": tokenizer.eos_token, "pad_was_missing": True},
           got={k: report.get(k) for k in ("pad_token", "pad_was_missing")})
    expect(tiny_model.config.pad_token_id == tokenizer.pad_token_id, lesson.configure_tokenizer,
           "the model's config should know the pad token's id too.", expected=tokenizer.pad_token_id,
           got=tiny_model.config.pad_token_id, hint="model.config.pad_token_id = ...")


def test_configure_tokenizer_keeps_an_existing_pad_token(lesson, tokenizer, tiny_model):
    """configure_tokenizer leaves a pad token that is already there (SmolLM2's) alone."""
    before = tokenizer.pad_token
    report = call(lesson.configure_tokenizer, tokenizer, tiny_model)
    expect(tokenizer.pad_token == before, lesson.configure_tokenizer, "the existing pad token was replaced.",
           expected=before, got=tokenizer.pad_token, hint="Set a pad token only when there is none.")
    expect(isinstance(report, dict) and report.get("pad_was_missing") is False, lesson.configure_tokenizer,
           "the report should say the pad token was not missing.", expected={"pad_was_missing": False},
           got=report if not isinstance(report, dict) else {"pad_was_missing": report.get("pad_was_missing")})


def test_end_marker_is_one_special_token(lesson, tokenizer, tiny_model):
    """configure_tokenizer adds [END] as one special token, never split, hidden by skip_special_tokens."""
    split_before = tokenizer(END_MARKER, add_special_tokens=False)["input_ids"]
    vocab_before = len(tokenizer)
    report = call(lesson.configure_tokenizer, tokenizer, tiny_model)
    ids = tokenizer("DIRECTIONS: Serve hot.\n" + END_MARKER, add_special_tokens=False)["input_ids"]
    end_ids = tokenizer(END_MARKER, add_special_tokens=False)["input_ids"]
    expect(len(end_ids) == 1, lesson.configure_tokenizer, f"[END] is still {len(end_ids)} tokens.",
           expected="1 token", got=tokenizer.convert_ids_to_tokens(end_ids),
           hint=f"Before, it was {tokenizer.convert_ids_to_tokens(split_before)}: which tokenizer method adds a token?")
    expect(END_MARKER in tokenizer.all_special_tokens, lesson.configure_tokenizer,
           "[END] was added as an ordinary token, not a special one.", expected=f"{END_MARKER!r} in all_special_tokens",
           got=tokenizer.all_special_tokens,
           hint="add_tokens adds ordinary tokens; which method adds special ones "
                "(never split, skippable when decoding)?")
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    expect(END_MARKER not in decoded, lesson.configure_tokenizer, "decoding with skip_special_tokens=True kept [END].",
           expected="DIRECTIONS: Serve hot.\\n", got=decoded)
    expect(isinstance(report, dict) and report.get("end_token") == END_MARKER
           and report.get("end_token_id") == end_ids[0] == ids[-1], lesson.configure_tokenizer,
           "the report should name [END] and its id.", expected={"end_token": END_MARKER, "end_token_id": end_ids[0]},
           got=report if not isinstance(report, dict) else {k: report.get(k) for k in ("end_token", "end_token_id")},
           hint="tokenizer.convert_tokens_to_ids(END_MARKER)")
    want = {"vocab_before": vocab_before, "vocab_after": vocab_before + 1}
    expect({k: report.get(k) for k in want} == want and len(tokenizer) == vocab_before + 1,
           lesson.configure_tokenizer,
           "exactly one token should be added, and the report should count before and after.",
           expected=want, got={**{k: report.get(k) for k in want}, "len(tokenizer)": len(tokenizer)},
           hint="len(tokenizer) counts every token, added ones included: measure it before and after.")


def test_configure_tokenizer_keeps_its_special_tokens(lesson, tokenizer, tiny_model):
    """configure_tokenizer keeps a special token the tokenizer already had when it adds [END]."""
    tokenizer.add_special_tokens({"extra_special_tokens": ["[STEP]"]})
    tiny_model.resize_token_embeddings(len(tokenizer))
    call(lesson.configure_tokenizer, tokenizer, tiny_model)
    expect("[STEP]" in tokenizer.all_special_tokens and END_MARKER in tokenizer.all_special_tokens,
           lesson.configure_tokenizer, "the tokenizer had the special token '[STEP]': after adding [END] it must "
           "still have it.", expected=["[STEP]", END_MARKER], got=tokenizer.all_special_tokens,
           hint="What does replace_extra_special_tokens decide about the special tokens already there?")


def test_configure_tokenizer_resizes_embeddings(lesson, tokenizer, tiny_model):
    """configure_tokenizer gives the model an embedding row for every token, [END] included, and can run twice."""
    report = call(lesson.configure_tokenizer, tokenizer, tiny_model)
    rows = tiny_model.get_input_embeddings().weight.shape[0]
    out_rows = tiny_model.get_output_embeddings().weight.shape[0]
    expect(rows >= len(tokenizer) and out_rows >= len(tokenizer), lesson.configure_tokenizer,
           "the model has fewer embedding rows than the tokenizer has tokens: the id of [END] points past the table.",
           expected=f"{len(tokenizer)} rows", got=f"{rows} input rows, {out_rows} output rows",
           hint="Which model method makes the embedding table fit len(tokenizer)?")
    expect(isinstance(report, dict) and report.get("embedding_rows") == rows, lesson.configure_tokenizer,
           "the report's embedding_rows should be the model's.", expected=rows,
           got=report.get("embedding_rows") if isinstance(report, dict) else report)
    end_id = tokenizer.convert_tokens_to_ids(END_MARKER)
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.tensor([[tokenizer.eos_token_id, end_id]])).logits
    expect(logits.shape[-1] >= len(tokenizer), lesson.configure_tokenizer,
           "the model cannot predict [END]: it scores fewer tokens than the tokenizer has.",
           expected=len(tokenizer), got=logits.shape[-1])
    again = call(lesson.configure_tokenizer, tokenizer, tiny_model)
    rows_again = tiny_model.get_input_embeddings().weight.shape[0]
    expect(rows_again == rows and isinstance(again, dict) and again.get("vocab_after") == report.get("vocab_after"),
           lesson.configure_tokenizer, "calling it a second time should change nothing.",
           expected={"rows": rows, "vocab_after": report.get("vocab_after")},
           got={"rows": rows_again, "vocab_after": again.get("vocab_after") if isinstance(again, dict) else again},
           hint="Is [END] added again even when it is already there?")


# -- tokenize_function ---------------------------------------------------------------------
def _tokenized(lesson, tokenizer, texts, max_length):
    out = call(lesson.tokenize_function, {"text": texts}, tokenizer, max_length)
    expect(hasattr(out, "keys") and {"input_ids", "attention_mask"} <= set(out.keys()), lesson.tokenize_function,
           "it must return input_ids and attention_mask.", expected="{'input_ids': [...], 'attention_mask': [...]}",
           got=out, hint="The tokenizer's own output has both: which keys do you return?")
    expect(len(out["input_ids"]) == len(texts), lesson.tokenize_function, "one row per text.",
           expected=len(texts), got=len(out["input_ids"]),
           hint="Pass the whole list examples['text'] to the tokenizer at once.")
    return out


def test_tokenize_function_pads_and_truncates(lesson, tokenizer):
    """tokenize_function makes every row exactly max_length tokens: long recipes cut, short ones padded."""
    tokenizer = with_end_token(tokenizer)
    texts = recipe_texts(8) + ["RECIPE: Toast\nINGREDIENTS: bread; butter; salt\nDIRECTIONS: Toast it.\n[END]"]
    out = _tokenized(lesson, tokenizer, texts, SHORT_MAX)
    lengths = [len(ids) for ids in out["input_ids"]]
    expect(max(lengths) <= SHORT_MAX, lesson.tokenize_function,
           f"rows longer than max_length={SHORT_MAX}: the long recipes were not truncated.",
           expected=f"every row {SHORT_MAX} tokens", got=lengths,
           hint="Which tokenizer option cuts a text at max_length?")
    expect(set(lengths) == {SHORT_MAX}, lesson.tokenize_function, "rows of different lengths cannot form one batch.",
           expected=f"every row {SHORT_MAX} tokens", got=lengths,
           hint="Which padding option fills every row up to max_length (not just to the longest in the batch)?")
    want = tokenizer(texts, truncation=True, padding="max_length", max_length=SHORT_MAX)
    expect(list(map(list, out["input_ids"])) == want["input_ids"], lesson.tokenize_function,
           "the token ids differ from the tokenizer's own, truncated and padded to max_length.",
           expected=want["input_ids"][-1], got=list(out["input_ids"][-1]),
           hint="Tokenize the texts as they are: no extra text, and the tokenizer's own special tokens.")


def test_attention_mask_marks_padding(lesson, tokenizer):
    """The attention mask is 1 on every real token and 0 on every pad token."""
    tokenizer = with_end_token(tokenizer)
    texts = ["RECIPE: Toast\nINGREDIENTS: bread; butter; salt\nDIRECTIONS: Toast it.\n[END]",
             "RECIPE: Tea\nINGREDIENTS: 1 teabag; 1 cup water; honey\nDIRECTIONS: Pour boiling water over the "
             "teabag, wait 4 minutes, stir in the honey.\n[END]"]
    max_length = 48
    out = _tokenized(lesson, tokenizer, texts, max_length)
    for text, ids, mask in zip(texts, out["input_ids"], out["attention_mask"]):
        real = len(tokenizer(text)["input_ids"])
        want_mask = [1] * real + [0] * (max_length - real)
        expect(len(ids) == max_length, lesson.tokenize_function,
               "a short recipe must be padded all the way to max_length.", expected=f"{max_length} ids", got=len(ids),
               hint="padding=True pads to the longest text of the batch; which value pads to max_length?")
        expect(list(mask) == want_mask, lesson.tokenize_function,
               "the attention mask should be 1 for the recipe's tokens and 0 for the padding after them.",
               expected=want_mask, got=list(mask), hint="The tokenizer makes the mask itself: do you return it?")
        expect(all(i == tokenizer.pad_token_id for i in list(ids)[real:]), lesson.tokenize_function,
               "the padding should be the pad token.", expected=tokenizer.pad_token_id, got=list(ids)[real:])


def test_tokenize_function_works_with_dataset_map(lesson, tokenizer):
    """tokenize_function works as a batched map over a dataset split, as training will use it."""
    from datasets import Dataset

    tokenizer = with_end_token(tokenizer)
    split = Dataset.from_list([dict(row) for row in _rows()])
    try:
        tokenized = split.map(lesson.tokenize_function, batched=True, batch_size=16, remove_columns=["title", "text"],
                              fn_kwargs={"tokenizer": tokenizer, "max_length": 128})
    except Exception:  # noqa: BLE001 - run it once more through call() for the learner's line
        call(lesson.tokenize_function, {"text": recipe_texts(16)}, tokenizer, 128)
        raise
    expect(set(tokenized.column_names) == {"input_ids", "attention_mask"}, lesson.tokenize_function,
           "after map the split should hold input_ids and attention_mask only.",
           expected=["input_ids", "attention_mask"], got=tokenized.column_names)
    lengths = {len(ids) for ids in tokenized["input_ids"]}
    expect(lengths == {128} and len(tokenized) == len(_rows()), lesson.tokenize_function,
           "every one of the 48 recipes should become a row of 128 ids.", expected={"rows": 48, "lengths": {128}},
           got={"rows": len(tokenized), "lengths": sorted(lengths)})


# -- token_length_stats ---------------------------------------------------------------------
def test_token_length_stats(lesson, tokenizer):
    """token_length_stats measures recipe lengths and what truncation costs, lost [END]s included."""
    tokenizer = with_end_token(tokenizer)
    texts = recipe_texts()
    want_lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    stats = call(lesson.token_length_stats, texts, tokenizer, 256)
    expect(isinstance(stats, dict) and list(stats.get("lengths", [])) == want_lengths, lesson.token_length_stats,
           "lengths should be each recipe's full length in tokens, untruncated.", expected=want_lengths[:10],
           got=(stats.get("lengths") if isinstance(stats, dict) else stats),
           hint="Measure before any truncation: which options must the tokenizer NOT get here?")
    longer = sum(n > 256 for n in want_lengths)
    want = {"count": 48, "max_length": 256, "max": max(want_lengths), "min": min(want_lengths),
            "longer_than_max": longer, "lost_end_marker": longer}
    got = {k: stats.get(k) for k in want}
    expect(got == want, lesson.token_length_stats, "the counts are off.", expected=want, got=got,
           hint="A recipe loses its [END] exactly when it is longer than max_length: its last token is cut.")
    share = stats.get("share_longer")
    expect(stats.get("median") == statistics.median(want_lengths)
           and isinstance(share, (int, float)) and abs(share - longer / 48) < 1e-3, lesson.token_length_stats,
           "median or share_longer is off.", expected={"median": statistics.median(want_lengths),
                                                       "share_longer": round(longer / 48, 4)},
           got={"median": stats.get("median"), "share_longer": stats.get("share_longer")})
    mean = stats.get("mean")
    expect(isinstance(mean, (int, float)) and abs(mean - statistics.fmean(want_lengths)) <= 0.05 + 1e-9,
           lesson.token_length_stats, "the mean length is off.", expected=round(statistics.fmean(want_lengths), 1),
           got=mean, hint="The mean is the total of the lengths divided by how many there are (statistics.fmean); "
                          "rounded, to how many decimals?")
    share = stats.get("padding_share")
    want_share = sum(max(0, 256 - n) for n in want_lengths) / (256 * len(want_lengths))
    expect(isinstance(share, (int, float)) and 0 <= share <= 1, lesson.token_length_stats,
           "padding_share is a share of the padded batch: it must lie between 0 and 1.",
           expected=f"a number from 0 to 1 (here {want_share:.4f})", got=share,
           hint="A share is part / whole: how many positions does a batch of 48 rows of 256 hold, and does "
                "Python divide by that whole, with your brackets?")
    expect(abs(share - want_share) < 1e-3, lesson.token_length_stats,
           "padding_share is not the share of padding positions in a batch padded to max_length.",
           expected=round(want_share, 4), got=share,
           hint="How much padding does a recipe of 300 tokens get once it is cut to 256: a negative amount?")
    want_cut = sum(max(0, n - 256) for n in want_lengths)
    expect(stats.get("tokens_cut") == want_cut, lesson.token_length_stats,
           "tokens_cut should count the tokens truncation throws away, all recipes together.",
           expected=want_cut, got=stats.get("tokens_cut"),
           hint="What does truncation take from a recipe of 200 tokens? And from one of 300?")
    exact = want_lengths[0]  # max_length = the first recipe's own length: it fits exactly, nothing is cut
    fits = call(lesson.token_length_stats, texts, tokenizer, exact)
    cut = sum(n > exact for n in want_lengths)
    want = {"longer_than_max": cut, "lost_end_marker": cut}
    got = {k: fits.get(k) for k in want} if isinstance(fits, dict) else fits
    expect(got == want, lesson.token_length_stats,
           f"with max_length={exact}, a recipe of exactly {exact} tokens fits: it is not cut and keeps its [END].",
           expected=want, got=got, hint="Is a recipe as long as max_length longer than max_length?")
    roomy = call(lesson.token_length_stats, texts, tokenizer, 1024)
    got = {k: roomy.get(k) for k in ("lost_end_marker", "longer_than_max")} if isinstance(roomy, dict) else roomy
    expect(got == {"lost_end_marker": 0, "longer_than_max": 0}, lesson.token_length_stats,
           "with max_length=1024 no recipe is cut, so none loses its [END].",
           expected={"lost_end_marker": 0, "longer_than_max": 0}, got=got)
