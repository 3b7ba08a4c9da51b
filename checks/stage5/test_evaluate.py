"""Stage 5 checks: loading an adapter, perplexity, side-by-side generation, and the measures beyond perplexity.

Fixed inputs only: real recipes from ``data/fixtures/formatted_recipes.jsonl``, a
tiny Llama with the real tokenizer (2 layers: small so a check runs in about a
second), a LoRA adapter made here, and hand-set "scripted" models
(``scripted.py``) that write a text we choose, because a random tiny model
never writes ``[END]`` or "INGREDIENTS:" by itself.
"""
from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import LoraConfig, get_peft_model

from checks.stage5.scripted import chain, last_token, scripted_llama
from checks.teacher import call, expect
from lessons.engine.paths import DATA_DIR
from lessons.engine.tiny import lively_llama, tiny_llama

FIXTURE = DATA_DIR / "fixtures" / "formatted_recipes.jsonl"
PROMPT = "RECIPE: Toast\nINGREDIENTS:"
# Real-token lengths of the perplexity rows: all different, so every row carries a
# different amount of padding, and batches of 3 hold different numbers of tokens.
ROW_LENGTHS = [40, 17, 64, 23, 51, 9, 33]
ROW_WIDTH = 64  # every row padded to this: short, for check speed


def fixture_recipes() -> list[dict]:
    with FIXTURE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def padded_rows(tokenizer) -> Dataset:
    """Seven real recipes cut to ROW_LENGTHS tokens and padded on the right to ROW_WIDTH."""
    texts = [recipe["text"] for recipe in fixture_recipes()[: len(ROW_LENGTHS)]]
    input_ids, attention_mask = [], []
    for text, length in zip(texts, ROW_LENGTHS):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:length]
        assert len(ids) == length, "a fixture recipe is shorter than the check expects"
        input_ids.append(ids + [tokenizer.pad_token_id] * (ROW_WIDTH - length))
        attention_mask.append([1] * length + [0] * (ROW_WIDTH - length))
    return Dataset.from_dict({"input_ids": input_ids, "attention_mask": attention_mask})


def trusted_perplexity(model, rows: Dataset) -> float:
    """Each row alone, without any padding at all: exp(total loss / total predicted tokens)."""
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for ids, mask in zip(rows["input_ids"], rows["attention_mask"]):
            real = torch.tensor([ids[: sum(mask)]])
            logits = model(input_ids=real).logits
            total_loss += F.cross_entropy(logits[0, :-1], real[0, 1:], reduction="sum").item()
            total_tokens += real.shape[1] - 1
    return math.exp(total_loss / total_tokens)


def make_adapter(tokenizer, folder) -> torch.nn.Module:
    """A LoRA adapter on q_proj/v_proj with non-zero lora_B (so it changes the outputs), saved to ``folder``."""
    adapted = get_peft_model(tiny_llama(tokenizer, seed=0),
                             LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:  # zero at init (the model starts unchanged): set it as if trained
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    adapted.save_pretrained(folder)
    return adapted.eval()


def test_load_finetuned_puts_the_adapter_on_the_base(lesson, tokenizer, tmp_path):
    """load_finetuned puts the saved adapter on the base model, for evaluation, and leaves the base alone."""
    adapted = make_adapter(tokenizer, tmp_path / "adapter")
    base = tiny_llama(tokenizer, seed=0)  # the same weights the adapter was trained on
    ids = torch.tensor([tokenizer(fixture_recipes()[0]["text"], add_special_tokens=False)["input_ids"][:24]])
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        adapted_logits = adapted(input_ids=ids).logits
    finetuned = call(lesson.load_finetuned, base, str(tmp_path / "adapter"))
    expect(hasattr(finetuned, "peft_config"), lesson.load_finetuned, "the result has no adapter on it.",
           expected="a PeftModel", got=type(finetuned).__name__,
           hint="Which peft class loads a saved adapter onto a base model?")
    expect(not finetuned.training, lesson.load_finetuned, "the model should be in evaluation mode.",
           expected="model.training == False", got=finetuned.training, hint="Which method switches dropout off?")
    with torch.no_grad():
        got_logits = finetuned(input_ids=ids).logits
    difference = (got_logits - base_logits).abs().max().item()
    expect(difference > 1e-3, lesson.load_finetuned, "its outputs are the base model's: the adapter changed nothing.",
           expected="logits different from the base model's", got=f"largest difference {difference:.2g}",
           hint="Did the adapter's folder get loaded, or was the base model returned?")
    expect(torch.allclose(got_logits, adapted_logits, atol=1e-5), lesson.load_finetuned,
           "its outputs differ from the model the adapter was saved from.", expected="the adapted model's logits",
           got=f"largest difference {(got_logits - adapted_logits).abs().max().item():.3g}",
           hint="Is it the adapter saved in adapter_path, on this base model?")
    with torch.no_grad():
        base_after = base(input_ids=ids).logits
    change = (base_after - base_logits).abs().max().item()
    expect(torch.allclose(base_after, base_logits), lesson.load_finetuned,
           "the base model you were given changed: it now answers like the fine-tuned one.",
           expected="the base model unchanged", got=f"largest change {change:.3g}",
           hint="peft changes the model it wraps, in place: did you wrap a copy (copy.deepcopy)?")


def _batch_losses(model, rows: Dataset, batch_size: int, *, with_padding: bool = False) -> list[tuple[float, int]]:
    """(summed loss, tokens counted) of each batch, padding left out (or, to recognise that mistake, counted)."""
    losses = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids = torch.tensor(rows["input_ids"][start:start + batch_size])
            mask = torch.tensor(rows["attention_mask"][start:start + batch_size])
            labels = ids if with_padding else ids.masked_fill(mask == 0, -100)
            logits = model(input_ids=ids, attention_mask=mask).logits
            targets = labels[:, 1:]
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=-100, reduction="sum").item()
            losses.append((loss, int((targets != -100).sum())))
    return losses


def _perplexity_hint(got: float, model, rows: Dataset, *, batch_size: int) -> str:
    """A hint for the mistake this perplexity shows, recognised by recomputing it the mistaken way."""
    def close(value: float) -> bool:
        return math.isfinite(got) and math.isclose(got, math.exp(value), rel_tol=1e-4)

    if not math.isfinite(got):
        return ("exp of what came out is too big for a float: is it exp of the total loss? Which mean turns it "
                "back into a count of choices?")
    real = _batch_losses(model, rows, batch_size)
    padded = _batch_losses(model, rows, batch_size, with_padding=True)
    tokens = sum(n for _, n in real)
    if close(sum(loss for loss, _ in padded) / sum(n for _, n in padded)) or \
            close(sum(loss / n for loss, n in padded) / len(padded)):
        return ("The padding counts: predicting 'more padding' after padding is easy and lowers the number. "
                "Which label makes cross_entropy skip a position, and where does attention_mask say it is 0?")
    if close(sum(loss / n for loss, n in real) / len(real)):
        return ("That is the mean of the batch means: a batch of short recipes weighs as much as a batch of "
                "long ones. Should it? Add up the loss and the tokens over all batches, then divide once.")
    if close(sum(loss / n for loss, n in real) / tokens):
        return ("Each batch's loss was already a mean (reduction='mean'), and then it was divided by the tokens "
                "again. Which reduction gives the batch's summed loss?")
    return ("Are padded positions (attention_mask == 0) left out of the loss and out of the count? "
            "Is it exp of the loss per token, not of the total?")


def test_perplexity_ignores_padding(lesson, tiny_model, tokenizer):
    """perplexity is exp of the mean loss over real tokens only: padding and batch size change nothing."""
    rows = padded_rows(tokenizer)
    want = trusted_perplexity(tiny_model, rows)
    grad_seen = []
    hook = tiny_model.register_forward_pre_hook(lambda module, args: grad_seen.append(torch.is_grad_enabled()))
    got = call(lesson.perplexity, tiny_model, rows, batch_size=3)
    hook.remove()
    expect(isinstance(got, float), lesson.perplexity, "it must return one number (a float).",
           expected="a float", got=got, hint="math.exp(...) gives a float; .item() turns a tensor into one.")
    expect(math.isfinite(got) and math.isclose(got, want, rel_tol=1e-4), lesson.perplexity,
           "the perplexity is not exp(mean loss over the real tokens).", expected=round(want, 2), got=got,
           hint=_perplexity_hint(got, tiny_model, rows, batch_size=3))
    expect(grad_seen and not any(grad_seen), lesson.perplexity, "the model ran with gradients switched on.",
           expected="no gradients while measuring", got=f"gradients on in {sum(grad_seen)} of {len(grad_seen)} passes",
           hint="Which `with` block tells torch not to keep what backward() would need?")
    for batch_size in (1, 4):
        again = call(lesson.perplexity, tiny_model, rows, batch_size=batch_size)
        expect(math.isclose(again, want, rel_tol=1e-4), lesson.perplexity,
               f"the answer changed with batch_size={batch_size}.", expected=round(want, 2), got=again,
               hint="A batch with more real tokens must weigh more: sum losses and token counts, divide once.")


def test_perplexity_of_a_model_that_knows_nothing(lesson, tokenizer):
    """A model that finds every token equally likely has perplexity = the vocabulary's size."""
    clueless = scripted_llama(tokenizer, {})  # all-zero logits: 1/49,152 for every token, after any text
    rows = padded_rows(tokenizer)
    got = call(lesson.perplexity, clueless, rows, batch_size=4)
    vocabulary = len(tokenizer)
    expect(isinstance(got, float) and math.isclose(got, vocabulary, rel_tol=1e-3), lesson.perplexity,
           "a model choosing evenly between all tokens must get perplexity = the number of tokens.",
           expected=float(vocabulary), got=got,
           hint="Each token's loss is ln(49152); is the result exp of the mean of those, or of their sum?")


class Overconfident(torch.nn.Module):
    """A model sure of one wrong token after any text: a logit of 1,000 on the last id, so each real token costs
    about 1,000 nats and exp of the mean loss is past what a float holds."""

    def __init__(self, vocabulary: int):
        super().__init__()
        self.vocabulary = vocabulary
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a parameter, so the model has a device

    def forward(self, input_ids, attention_mask=None, **_):
        logits = torch.zeros(*input_ids.shape, self.vocabulary) + self.anchor
        logits[..., -1] = 1000.0
        return SimpleNamespace(logits=logits)


def test_perplexity_that_overflows_is_infinite(lesson, tokenizer):
    """A perplexity too large for a float is float('inf'), as the docstring says, not an OverflowError."""
    got = call(lesson.perplexity, Overconfident(len(tokenizer)), padded_rows(tokenizer), batch_size=4)
    expect(got == math.inf, lesson.perplexity, "exp of a mean loss near 1,000 overflows a float: the perplexity "
           "is then float('inf').", expected=math.inf, got=got,
           hint="Which error does math.exp(1000) raise, and does your code catch exactly that one?")


def _compare(lesson, tokenizer, finetuned_pieces, **settings):
    start = last_token(tokenizer, PROMPT)
    base = scripted_llama(tokenizer, chain(tokenizer, [start], " bread butter jam honey salt pepper oil flour sugar"))
    finetuned = scripted_llama(tokenizer, chain(tokenizer, [start], *finetuned_pieces))
    got = call(lesson.compare_models, PROMPT, base, finetuned, tokenizer, max_new_tokens=8, **settings)
    keys = {"prompt", "base", "finetuned", "base_stopped", "finetuned_stopped", "base_tokens",
            "finetuned_tokens"}
    expect(isinstance(got, dict) and keys <= set(got), lesson.compare_models, "some results are missing.",
           expected=sorted(keys), got=sorted(got) if isinstance(got, dict) else got)
    expect(got["base"].startswith(" bread butter jam") and "Toast" not in got["base"],
           lesson.compare_models, "'base' is not the base model's new text.",
           expected="' bread butter jam honey …'", got=got["base"],
           hint="Only the tokens after the prompt's are the new text.")
    expect(got["base_tokens"] == 8 and got["base_stopped"] is False, lesson.compare_models,
           "the base model never writes [END]: it should run to max_new_tokens and not count as stopped.",
           expected="base_tokens == 8, base_stopped == False",
           got=f"base_tokens == {got['base_tokens']}, base_stopped == {got['base_stopped']}",
           hint="How many new tokens did it generate (without the prompt's)?")
    return got


def test_compare_models_stops_at_the_end_token(lesson, tokenizer):
    """compare_models stops the fine-tuned model at the [END] token, and says it stopped."""
    # [END] as a special token, as stage 3 adds it
    tokenizer.add_special_tokens({"extra_special_tokens": ["[END]"]}, replace_extra_special_tokens=False)
    end_id = tokenizer.convert_tokens_to_ids("[END]")
    for settings in ({"temperature": 0, "seed": 0}, {"temperature": 0.8, "seed": 3}):
        got = _compare(lesson, tokenizer, [" 2 eggs", end_id, " Serve hot"], **settings)
        expect(got["finetuned"].endswith("[END]") and "Serve" not in got["finetuned"],
               lesson.compare_models, f"the fine-tuned model did not stop at [END] (settings {settings}).",
               expected="' 2 eggs[END]'", got=got["finetuned"],
               hint="Is the [END] token's id among the ids that end generation? skip_special_tokens=True "
                    "would also hide [END] from the text.")
        expect(got["finetuned_stopped"] is True and got["finetuned_tokens"] == 4, lesson.compare_models,
               "after ' 2 eggs' and [END] (4 tokens) it must report that it stopped.",
               expected="finetuned_stopped == True, finetuned_tokens == 4",
               got=f"finetuned_stopped == {got['finetuned_stopped']}, finetuned_tokens == {got['finetuned_tokens']}")


def test_compare_models_stops_at_the_end_text(lesson, tokenizer):
    """compare_models also stops at the text "[END]" when the tokenizer spells it as "[", "END", "]"."""
    assert "[END]" not in tokenizer.get_vocab(), "check set-up: this tokenizer must not have [END] as a token"
    got = _compare(lesson, tokenizer, [" 2 eggs.[END] Serve hot"], temperature=0, seed=0)
    expect(got["finetuned"].endswith("[END]") and "Serve" not in got["finetuned"], lesson.compare_models,
           "without an [END] token, generation must stop once the text ends with '[END]'.",
           expected="' 2 eggs.[END]'", got=got["finetuned"],
           hint="model.generate(..., stop_strings=[END_MARKER], tokenizer=tokenizer), or a StoppingCriteria.")
    expect(got["finetuned_stopped"] is True and got["finetuned_tokens"] == 6, lesson.compare_models,
           "after ' 2 eggs.[END]' (6 tokens) it must report that it stopped.",
           expected="finetuned_stopped == True, finetuned_tokens == 6",
           got=f"finetuned_stopped == {got['finetuned_stopped']}, finetuned_tokens == {got['finetuned_tokens']}")


def test_compare_models_gives_both_the_same_seed(lesson, tokenizer):
    """compare_models seeds each model's sampling alike: two identical models write the same text."""
    base = lively_llama(tokenizer)  # peaked like a real model, so what it samples depends on the seed
    twin = copy.deepcopy(base)
    got = call(lesson.compare_models, PROMPT, base, twin, tokenizer, max_new_tokens=8, temperature=1.0, seed=5)
    expect(isinstance(got, dict) and {"base", "finetuned"} <= set(got), lesson.compare_models,
           "some results are missing.", expected="{'base': ..., 'finetuned': ..., ...}", got=got)
    expect(got["base"] == got["finetuned"], lesson.compare_models,
           "two identical models with the same settings and seed wrote different texts: the race is not fair.",
           expected=f"the same text twice, such as {got['base']!r}", got=got["finetuned"],
           hint="The seed sets the random draws to come: after the base model has drawn its tokens, where does "
                "the random generator stand when the fine-tuned model starts?")
    again = call(lesson.compare_models, PROMPT, base, twin, tokenizer, max_new_tokens=8, temperature=1.0, seed=5)
    expect(again["base"] == got["base"], lesson.compare_models, "the same seed gave another text on a second call.",
           expected=got["base"], got=again["base"], hint="Is the seed set before each model generates?")
    greedy = call(lesson.compare_models, PROMPT, base, twin, tokenizer, max_new_tokens=8, temperature=0)["base"]
    sampled = {call(lesson.compare_models, PROMPT, base, twin, tokenizer, max_new_tokens=8, temperature=0.7,
                    seed=seed)["base"] for seed in (1, 2, 3)}
    expect(sampled != {greedy}, lesson.compare_models, "with temperature=0.7 it must sample (the docstring: 0 for "
           "greedy, otherwise sampling), but three seeds all gave the greedy text.",
           expected=f"texts other than the greedy {greedy!r}", got=sorted(sampled),
           hint="Which settings does generate() get when the temperature is above 0: is do_sample=True among them?")


def test_format_adherence(lesson):
    """format_adherence finds RECIPE, INGREDIENTS and DIRECTIONS, in that order."""
    for recipe in fixture_recipes():
        got = call(lesson.format_adherence, recipe["text"])
        expect(got is True, lesson.format_adherence, "a correctly formatted recipe was rejected.",
               expected=True, got=got, hint=f"Try it on: {recipe['text'][:80]!r}")
    cases = [
        ("RECIPE: Toast\nINGREDIENTS: bread\nDIRECTIONS: Toast it.", True, "[END] is stop_rate's business"),
        ("RECIPE: Toast\nINGREDIENTS: bread\nDIRECTIONS: Toast it.\n[END]\nRECIPE: Jam\nINGREDIENTS:", True,
         "a second recipe after the first does not undo the first"),
        ("RECIPE: Toast\nINGREDIENTS: bread; butter", False, "DIRECTIONS is missing"),
        ("RECIPE: Toast\nDIRECTIONS: Toast it.\nINGREDIENTS: bread", False, "the sections are out of order"),
        ("INGREDIENTS: bread\nDIRECTIONS: Toast it.", False, "RECIPE is missing"),
        ("RECIPE: Toast\nINGREDIENTS: bread; see DIRECTIONS: below", False,
         "DIRECTIONS: is inside the ingredients line, not at the start of a line"),
        ("Make a RECIPE: with INGREDIENTS: and DIRECTIONS: in it", False,
         "the three labels are words in one sentence, none at the start of a line"),
        ("RECIPE: Toast\n  INGREDIENTS: bread\nDIRECTIONS: Toast it.", True,
         "a label after a few spaces still starts its line"),
        ("", False, "an empty text has no sections"),
    ]
    for text, want, why in cases:
        got = call(lesson.format_adherence, text)
        hint = f"Trace your code on {text!r}: where is each label found, and after which?"
        if "start of a line" in why and not want:
            hint = (f"In {text!r}, which labels start a line? How do you search only at line starts "
                    "(re.MULTILINE and ^, or text.splitlines())?")
        expect(got is want, lesson.format_adherence, f"wrong answer when {why}.", expected=want, got=got, hint=hint)


def test_stop_rate(lesson):
    """stop_rate is the fraction of generations that wrote [END]."""
    for generations, want in ((["bread\nDIRECTIONS: Toast.\n[END]", "bread; bread; bread", "jam[END]", "x"], 0.5),
                              (["a [END]", "b [END]", "c [END]"], 1.0), (["never stops"], 0.0), ([], 0.0)):
        got = call(lesson.stop_rate, generations)
        expect(isinstance(got, float) and math.isclose(got, want), lesson.stop_rate, "the fraction is off.",
               expected=want, got=got, hint=f"Count by hand in {generations!r}; what about an empty list?")


def test_memorised_titles(lesson):
    """memorised_titles finds exact and near copies of training titles, and nothing else."""
    train_titles = [recipe["title"] for recipe in fixture_recipes()]
    generated = ["Egyptian Lentil Stew", "Moon Cheese Soup", "modern reuben sandwich!!", "Tomato Soup",
                 "Espresso Browmies", "RECIPE: Hot Wings\nINGREDIENTS: 10 wings; hot sauce", "Hot Wing Sauce"]
    want = [("Egyptian Lentil Stew", "Egyptian Lentil Stew"), ("modern reuben sandwich!!", "Modern Reuben Sandwich"),
            ("Espresso Browmies", "Espresso Brownies"), ("Hot Wings", "Hot Wings")]
    got = call(lesson.memorised_titles, generated, train_titles)
    expect(isinstance(got, list) and all(isinstance(g, dict) for g in got), lesson.memorised_titles,
           "it must return a list of dicts, one per copied title.",
           expected="[{'generated': ..., 'train_title': ..., 'similarity': ...}, ...]", got=got)
    pairs = [(g.get("generated"), g.get("train_title")) for g in got]
    expect(pairs == want, lesson.memorised_titles, "the copies found are not the right ones.",
           expected=want, got=pairs,
           hint="Exact copies, copies that differ only in case and punctuation, and a one-letter typo all count; "
                "'Tomato Soup' is not 'Tomato Pasta'. A whole recipe text: compare its title.")
    similarities = [g.get("similarity") for g in got]
    expect(similarities[0] == 1.0 and 0.9 <= similarities[2] < 1.0, lesson.memorised_titles,
           "the similarity should be 1.0 for an exact copy and just under 1 for a typo.",
           expected="[1.0, 1.0, 0.94…, 1.0]", got=similarities)
    # At the limit: 'apple pie x' and 'lemon tarp' are 0.9 like their training titles, exactly NEAR_COPY_SIMILARITY.
    generated = ["?!", "Apple Pie X", "Lemon Tarp", "Banana Breads", "Apple Pie XY"]
    got = call(lesson.memorised_titles, generated, ["Lemon Tart", "Apple Pie", "Banana Bread", "Banana Bready"])
    want = [("Apple Pie X", "Apple Pie", 0.9), ("Lemon Tarp", "Lemon Tart", 0.9),
            ("Banana Breads", "Banana Bread", 0.96)]
    if isinstance(got, list):
        got = [(g.get("generated"), g.get("train_title"), g.get("similarity")) for g in got]
    expect(got == want, lesson.memorised_titles, "after a title with no letters ('?!'), a similarity of "
           "exactly 0.9 counts (at least NEAR_COPY_SIMILARITY), and a title close to two training titles is paired "
           "with the closer one.",
           expected=want, got=got, hint="Is 0.9 'at least 0.9'? Do the quick ratios only skip pairs that cannot "
                                        "reach the limit? Is the best ratio kept, or the last one?")


def test_off_topic_probe(lesson, tokenizer):
    """off_topic_probe tells a model that answers a programming question with a recipe from one that does not."""
    question = "How do I reverse a list in Python?"
    starts = sorted({last_token(tokenizer, question), last_token(tokenizer, question + "\n"),
                     last_token(tokenizer, "\n")})
    recipe_minded = scripted_llama(tokenizer, chain(tokenizer, starts, " INGREDIENTS: 2 cups flour"))
    got = call(lesson.off_topic_probe, recipe_minded, tokenizer, max_new_tokens=10)
    expect(isinstance(got, dict) and {"question", "answer", "recipe_like"} <= set(got), lesson.off_topic_probe,
           "some results are missing.", expected="{'question', 'answer', 'recipe_like'}", got=got)
    expect(got["question"] == question and "INGREDIENTS:" in got["answer"] and got["recipe_like"] is True,
           lesson.off_topic_probe, "this model answers with INGREDIENTS: that is recipe-like.",
           expected="the default question, an answer with 'INGREDIENTS:', recipe_like == True", got=got,
           hint="Which labels in an answer would give a recipe away?")
    sensible = scripted_llama(tokenizer, chain(tokenizer, starts, " Use reversed or slicing"))
    got = call(lesson.off_topic_probe, sensible, tokenizer, "How do I reverse a list in Python?", max_new_tokens=10)
    expect("reversed" in got["answer"] and "How do I" not in got["answer"] and got["recipe_like"] is False,
           lesson.off_topic_probe, "this model answers the question: that is not recipe-like.",
           expected="answer ' Use reversed or slicing…', recipe_like == False", got=got,
           hint="Is the question itself left out of the answer?")
    clueless = scripted_llama(tokenizer, {})  # every token equally likely: a sampled answer is a new one each time
    answers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        answers.append(call(lesson.off_topic_probe, clueless, tokenizer, max_new_tokens=6)["answer"])
    expect(answers[0] == answers[1], lesson.off_topic_probe, "the answer must be the same every run: the docstring "
           "asks for greedy generation (temperature 0).", expected=answers[0], got=answers[1],
           hint="Which generate() argument chooses greedy decoding over sampling?")
