"""Stage 6 checks: temperature, top-p, sampling, your generation loop, the sweep and the "show your work".

Your sampling maths is compared with transformers' own logits processors
(``TemperatureLogitsWarper``, ``TopPLogitsWarper``, the ones ``model.generate``
uses) on small fixed inputs, plus hand-made edge cases. The loop is checked on
tiny 2-layer models (small so a check runs in about a second): a random one
whose next token depends on the context (``lively_llama`` of ``lessons/engine/tiny.py``:
peaked like a real model, so temperature and top-p change what it writes), and hand-set "scripted" ones
(``checks/stage5/scripted.py``) that write a text we choose, because a random
model never writes ``[END]`` by itself.

About ``TopPLogitsWarper`` (transformers 5): it sorts *ascending* and removes a
token when the probability of it and every less likely token together is at most
``1 - top_p``: the same nucleus as "keep tokens until the sum reaches p, the
crossing token included", and ``min_tokens_to_keep=1`` (the default) always keeps
the most probable token. Between tokens of *equal* probability at the nucleus'
edge, which one survives depends on the sort, so these inputs have no ties.
"""
from __future__ import annotations

import copy
import math

import torch
from transformers import TemperatureLogitsWarper, TopPLogitsWarper

from checks.stage5.scripted import chain, last_token, scripted_llama
from checks.teacher import call, expect, fail
from lessons.engine.tiny import lively_llama
from lessons.engine.todo import NotImplementedYet

PROMPT = "RECIPE: Banana Pancakes\nINGREDIENTS:"


def random_logits(rows: int = 4, vocab: int = 200, seed: int = 0) -> torch.Tensor:
    """Spread-out logits with no ties (a tie at the nucleus' edge has no single right answer)."""
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def hf_warp(logits: torch.Tensor, *, temperature: float | None = None, top_p: float | None = None) -> torch.Tensor:
    """What transformers' generate does to a (rows, vocab) tensor of logits: temperature, then top-p."""
    dummy_ids = torch.zeros((logits.shape[0], 1), dtype=torch.long)  # the warpers ignore the ids
    if temperature is not None:
        logits = TemperatureLogitsWarper(float(temperature))(dummy_ids, logits)
    if top_p is not None:
        logits = TopPLogitsWarper(float(top_p))(dummy_ids, logits)
    return logits


def kept(logits: torch.Tensor) -> list[int]:
    return [int(i) for i in torch.nonzero(torch.isfinite(logits)).flatten()]


def test_apply_temperature_matches_transformers(lesson):
    """apply_temperature divides the logits by t, exactly as transformers' TemperatureLogitsWarper does."""
    logits = random_logits()
    original = logits.clone()
    for temperature in (0.5, 1.0, 2.0):
        got = call(lesson.apply_temperature, logits, temperature)
        want = hf_warp(logits, temperature=temperature)
        expect(isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want),
               lesson.apply_temperature, f"the logits for temperature {temperature} are off.",
               expected=want[0, :4], got=got[0, :4] if isinstance(got, torch.Tensor) else got,
               hint="A low temperature should make the favourite more likely: which operation makes "
                    "the gaps between logits bigger when t < 1?")
    expect(torch.equal(logits, original), lesson.apply_temperature, "the logits passed in were changed in place.",
           expected="a new tensor, the input untouched", got="the input changed",
           hint="`logits /= t` changes the caller's tensor; `logits / t` makes a new one.")
    sharp = torch.softmax(call(lesson.apply_temperature, torch.tensor([2.0, 1.0, 0.0]), 0.5), -1)
    expect(sharp[0] > 0.8, lesson.apply_temperature, "temperature 0.5 should make the favourite sharper.",
           expected="about [0.867, 0.117, 0.016]", got=[round(float(v), 3) for v in sharp])


def test_apply_temperature_refuses_zero(lesson):
    """apply_temperature refuses a temperature of 0 or below with a clear ValueError."""
    for bad in (0.0, -1.0):
        try:
            got = lesson.apply_temperature(torch.tensor([2.0, 1.0, 0.0]), bad)
        except ValueError:
            continue
        except NotImplementedYet:
            raise
        except Exception as error:  # noqa: BLE001 - any other error is the wrong kind
            fail(lesson.apply_temperature, f"temperature {bad} raised {type(error).__name__}, not ValueError.",
                 expected="ValueError with a message", got=error, hint="`raise ValueError(...)` before dividing.")
        fail(lesson.apply_temperature, f"temperature {bad} gave logits instead of an error.",
             expected="ValueError", got=got, hint="What is 2 / 0 in torch? Would a learner notice the infs?")


def test_top_p_filter_matches_transformers(lesson):
    """top_p_filter keeps the same tokens as transformers' TopPLogitsWarper, on many rows and values of p."""
    logits = random_logits(rows=6)
    for p in (0.05, 0.3, 0.6, 0.9, 0.99):
        got = call(lesson.top_p_filter, logits, p)
        want = hf_warp(logits, top_p=p)
        expect(isinstance(got, torch.Tensor) and got.shape == want.shape, lesson.top_p_filter,
               "it must return logits of the same shape.", expected=tuple(want.shape),
               got=tuple(got.shape) if isinstance(got, torch.Tensor) else got)
        for row in range(logits.shape[0]):
            expect(kept(got[row]) == kept(want[row]), lesson.top_p_filter,
                   f"with p={p} the nucleus of row {row} is not transformers' nucleus.",
                   expected=f"{len(kept(want[row]))} tokens kept: {kept(want[row])[:12]}",
                   got=f"{len(kept(got[row]))} tokens kept: {kept(got[row])[:12]}",
                   hint="Filter each row on its own (the last dimension); is the token that crosses p kept?")
        finite = torch.isfinite(want)
        expect(torch.allclose(got[finite], want[finite]) and bool(torch.all(got[~finite] == float("-inf"))),
               lesson.top_p_filter, "kept tokens must keep their logits, dropped ones become -inf.",
               expected="the same logits, or -inf", got=got[0, :6], hint="masked_fill(..., float('-inf'))")


def test_top_p_filter_edge_cases(lesson):
    """top_p_filter keeps the token that crosses p, always keeps the top token, and p=1 keeps them all."""
    probabilities = torch.tensor([0.15, 0.5, 0.05, 0.3])  # shuffled on purpose: sorting is your job
    logits = torch.log(probabilities)
    original = logits.clone()
    for p, want, why in ((0.6, [1, 3], "0.5 is below 0.6; 0.3 takes the sum to 0.8, crossing 0.6: keep it"),
                         (0.85, [0, 1, 3], "0.5 + 0.3 = 0.8 is below 0.85; 0.15 crosses it: keep it"),
                         (0.001, [1], "even a tiny p keeps the most probable token"),
                         (0.99, [0, 1, 2, 3], "all four are needed to reach 0.99")):
        got = call(lesson.top_p_filter, logits, p)
        expect(kept(got) == want, lesson.top_p_filter, f"with p={p} the wrong tokens were kept ({why}).",
               expected=f"tokens {want} kept", got=f"tokens {kept(got)} kept, logits {got.tolist()}",
               hint="Walk the docstring's example by hand: is the token that crosses p inside the nucleus?")
    expect(torch.equal(logits, original), lesson.top_p_filter, "the logits passed in were changed in place.",
           expected="the input untouched", got=logits, hint="masked_fill (no underscore) returns a new tensor.")
    # The last token is nearly impossible (about 1e-18), but possible; in float32 the three before it sum to 1.0.
    tail = torch.tensor([2.0, 1.0, 0.0, -40.0])
    got = call(lesson.top_p_filter, tail, 1.0)
    expect(kept(got) == [0, 1, 2, 3], lesson.top_p_filter, "p=1 must keep every token.",
           expected="all 4 tokens kept", got=got.tolist(),
           hint="With p = 1 the nucleus is the whole vocabulary. In float32, does 1 - 1e-18 equal 1.0?")
    rows = torch.stack([logits, torch.log(torch.tensor([0.05, 0.15, 0.3, 0.5]))])
    got = call(lesson.top_p_filter, rows, 0.6)
    expect([kept(row) for row in got] == [[1, 3], [2, 3]], lesson.top_p_filter,
           "with two rows, each row needs its own nucleus.", expected=[[1, 3], [2, 3]],
           got=[kept(row) for row in got], hint="Sort, sum and filter along the last dimension (dim=-1).")


def test_sample_next_token(lesson):
    """sample_next_token is greedy at temperature 0, repeatable with a generator, and draws with the right odds."""
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    got = call(lesson.sample_next_token, logits[[3, 0, 1, 2, 4, 5]], temperature=0)
    expect(isinstance(got, int) and got == 1, lesson.sample_next_token, "temperature 0 must pick the argmax.",
           expected=1, got=got, hint="A plain int: int(torch.argmax(logits)).")
    draws = [call(lesson.sample_next_token, logits, temperature=1.0, generator=torch.Generator().manual_seed(7))
             for _ in range(3)]
    expect(len(set(draws)) == 1 and isinstance(draws[0], int), lesson.sample_next_token,
           "the same seeded generator must give the same token.", expected="the same int three times", got=draws,
           hint="Pass generator=generator to torch.multinomial.")
    # Temperature 2.5 then top-p 0.8 keeps 4 tokens; top-p first (at temperature 1) would keep only 3.
    temperature, top_p, n = 2.5, 0.8, 4000
    want = torch.softmax(hf_warp(logits[None], temperature=temperature, top_p=top_p)[0], -1)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    counts = torch.zeros(len(logits))
    for _ in range(n):
        counts[call(lesson.sample_next_token, logits, temperature=temperature, top_p=top_p, generator=generator)] += 1
    frequencies = counts / n
    expect(counts[4] == 0 and counts[5] == 0, lesson.sample_next_token,
           "it drew tokens that top-p should have removed.", expected="tokens 4 and 5 never drawn",
           got=f"drawn {int(counts[4])} and {int(counts[5])} times in {n}",
           hint="Are the draws made from the filtered logits?")
    # 4,000 draws: each frequency lies within 0.03 of its probability (about 4 standard deviations).
    expect(bool(torch.all((frequencies - want).abs() < 0.03)), lesson.sample_next_token,
           f"over {n} draws the frequencies are not the probabilities (temperature {temperature}, top-p {top_p}).",
           expected=[round(float(v), 3) for v in want], got=[round(float(v), 3) for v in frequencies],
           hint="Temperature first, then top-p, then softmax, then torch.multinomial.")


def _record_forward_calls(model, grad_seen: list | None = None):
    """Record, for each forward pass, how many tokens went in and whether a cache came with them
    (and, into ``grad_seen``, whether gradients were on)."""
    calls = []

    def record(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append((None if ids is None else ids.shape[-1], kwargs.get("past_key_values") is not None))
        if grad_seen is not None:
            grad_seen.append(torch.is_grad_enabled())

    return calls, model.register_forward_pre_hook(record, with_kwargs=True)


def test_generate_custom_recipe_is_greedy_with_a_cache(lesson, tokenizer, monkeypatch):
    """generate_custom_recipe at temperature 0 writes generate's text: your sampler, the KV cache, no gradients."""
    model = lively_llama(tokenizer)
    inputs = tokenizer(PROMPT, return_tensors="pt")
    prompt_length = inputs["input_ids"].shape[1]
    greedy = model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    want = tokenizer.decode(greedy[0, prompt_length:])
    choices = []
    own_sampler = lesson.sample_next_token

    def spy(*args, **kwargs):
        choices.append(own_sampler(*args, **kwargs))
        return choices[-1]

    monkeypatch.setattr(lesson, "sample_next_token", spy)
    grad_seen: list[bool] = []
    calls, hook = _record_forward_calls(model, grad_seen)
    try:
        got = call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, max_new_tokens=12, temperature=0,
                   top_p=1.0)
    finally:
        hook.remove()
    expect(got == want, lesson.generate_custom_recipe, "with temperature 0 the text must be the greedy continuation.",
           expected=want, got=got, hint="Is each chosen token fed back in? Only the new text is returned.")
    expect(len(choices) == 12, lesson.generate_custom_recipe, "each token should be chosen by sample_next_token.",
           expected="12 calls for 12 new tokens", got=f"{len(choices)} calls",
           hint="Call your own sample_next_token once per new token.")
    lengths = [length for length, _ in calls]
    # 12 model calls, or 13 for a loop that also scores the token after its last one.
    expect(len(calls) in (12, 13) and lengths[0] == prompt_length and all(n == 1 for n in lengths[1:])
           and all(cached for _, cached in calls[1:]), lesson.generate_custom_recipe,
           "the loop does not use the KV cache: after the prompt, each step should feed one token and the cache.",
           expected=f"tokens in per step: [{prompt_length}, 1, 1, …], past_key_values from step 2 on",
           got=f"tokens in per step: {lengths}, past_key_values given: {[c for _, c in calls]}",
           hint="Keep outputs.past_key_values and pass it back with only the newest token.")
    expect(grad_seen and not any(grad_seen), lesson.generate_custom_recipe,
           "the model ran with gradients switched on: every step kept what a backward pass would need.",
           expected="no gradients while generating",
           got=f"gradients on in {sum(grad_seen)} of {len(grad_seen)} model calls",
           hint="Generating is measuring, not training: which `with` block tells torch so, around the loop?")


def test_generate_custom_recipe_stops_at_the_end(lesson, tokenizer):
    """generate_custom_recipe stops at the [END] token, at the text "[END]", at end-of-text, and at max_new_tokens."""
    start = last_token(tokenizer, PROMPT)
    settings = {"temperature": 0.7, "top_p": 0.9, "seed": 0}
    cases = []
    plain = scripted_llama(tokenizer, chain(tokenizer, [start], " 2 eggs.[END] Serve hot"))
    cases.append((plain, tokenizer, 20, " 2 eggs.[END]", 6, "the text '[END]' (three tokens: '.[', 'END', ']')"))
    ending = scripted_llama(tokenizer, chain(tokenizer, [start], " 2 eggs", tokenizer.eos_token_id, " Serve hot"))
    cases.append((ending, tokenizer, 20, " 2 eggs", 4, "the end-of-text token (which is not part of the text)"))
    cases.append((plain, tokenizer, 2, " 2", 2, "max_new_tokens=2"))
    end_tokenizer = copy.deepcopy(tokenizer)
    # [END] as a special token, as stage 3 adds it
    end_tokenizer.add_special_tokens({"extra_special_tokens": ["[END]"]}, replace_extra_special_tokens=False)
    end_id = end_tokenizer.convert_tokens_to_ids("[END]")
    special = scripted_llama(end_tokenizer, chain(end_tokenizer, [start], " 2 eggs", end_id, " Serve hot"))
    cases.append((special, end_tokenizer, 20, " 2 eggs[END]", 4, "the [END] token (kept in the text)"))
    for model, tok, max_new_tokens, want, steps, why in cases:
        calls, hook = _record_forward_calls(model)
        try:
            got = call(lesson.generate_custom_recipe, model, tok, PROMPT, max_new_tokens=max_new_tokens, **settings)
        finally:
            hook.remove()
        expect(got == want, lesson.generate_custom_recipe, f"it should stop at {why}.", expected=want, got=got,
               hint="After each token: is it end-of-text (stop, leave it out)? Does the text now end with [END] "
                    "(stop, keep it)?")
        expect(steps <= len(calls) <= steps + 1, lesson.generate_custom_recipe,
               f"the loop went on after {why}: the text was cut, but the model kept running.",
               expected=f"{steps} model calls (or {steps + 1})", got=f"{len(calls)} model calls",
               hint="Stop the loop (break) as soon as the recipe has ended, not only the text.")


def test_generate_custom_recipe_uses_temperature_and_top_p(lesson, tokenizer):
    """generate_custom_recipe hands its temperature and top_p to every draw."""
    model = lively_llama(tokenizer)
    greedy = call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, max_new_tokens=8, temperature=0)
    # Each setting leaves only the most probable token worth drawing, so sampling must give the greedy text;
    # temperature 1 and top-p 1 draw from the whole vocabulary and, over 8 tokens, practically never do.
    for settings, name, why in (({"temperature": 1.0, "top_p": 0.01}, "top_p",
                                 "with top_p=0.01 the nucleus holds only the most probable token"),
                                ({"temperature": 0.01, "top_p": 1.0}, "temperature",
                                 "temperature 0.01 makes the most probable token all but certain")):
        for seed in (0, 1):
            got = call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, max_new_tokens=8, seed=seed,
                       **settings)
            expect(got == greedy, lesson.generate_custom_recipe,
                   f"{why}, so it must write what temperature 0 writes (settings {settings}, seed {seed}).",
                   expected=greedy, got=got,
                   hint=f"Does the {name} you were given reach sample_next_token at every step?")


def test_generate_custom_recipe_seed(lesson, tokenizer):
    """generate_custom_recipe repeats itself with the same seed and varies with others."""
    model = lively_llama(tokenizer)
    options = {"max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0}
    first = call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, seed=5, **options)
    again = call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, seed=5, **options)
    expect(first == again, lesson.generate_custom_recipe, "the same seed must give the same text.",
           expected=first, got=again, hint="Seed a torch.Generator and pass it to every draw.")
    others = {call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, seed=s, **options) for s in (6, 7, 8)}
    expect(len(others | {first}) > 1, lesson.generate_custom_recipe, "different seeds always gave the same text.",
           expected="some variety at temperature 1", got=sorted(others))


def test_sampling_sweep(lesson, tokenizer):
    """sampling_sweep makes one generation per (temperature, top_p) pair, in order, all from the same seed."""
    model = lively_llama(tokenizer)
    temperatures, top_ps = [0.0, 1.0, 3.0], [0.5, 1.0]
    got = call(lesson.sampling_sweep, model, tokenizer, PROMPT, temperatures, top_ps, max_new_tokens=5, seed=3)
    expect(isinstance(got, list) and len(got) == 6 and all(isinstance(cell, dict) for cell in got),
           lesson.sampling_sweep, "one dict per pair: 3 temperatures × 2 top-p values = 6.",
           expected="a list of 6 dicts", got=got)
    settings = [(cell.get("temperature"), cell.get("top_p")) for cell in got]
    want_settings = [(t, p) for t in temperatures for p in top_ps]
    expect(settings == want_settings, lesson.sampling_sweep, "the pairs are missing or out of order.",
           expected=want_settings, got=settings, hint="for temperature in temperatures: for top_p in top_ps: …")
    for cell in got:
        want = call(lesson.generate_custom_recipe, model, tokenizer, PROMPT, max_new_tokens=5,
                    temperature=cell["temperature"], top_p=cell["top_p"], seed=3)
        expect(cell.get("text") == want, lesson.sampling_sweep,
               f"the text for temperature {cell['temperature']}, top-p {cell['top_p']} is not "
               "generate_custom_recipe's with the sweep's seed.", expected=want, got=cell.get("text"),
               hint="Every cell uses the same seed, so only the settings differ.")
        expect(isinstance(cell.get("repetition"), float) and 0.0 <= cell["repetition"] <= 1.0, lesson.sampling_sweep,
               "each cell needs its repetition_rate.", expected="a float from 0 to 1", got=cell.get("repetition"))


def test_next_token_distribution(lesson, tokenizer):
    """next_token_distribution shows the top tokens' probabilities before and after temperature and top-p."""
    model = lively_llama(tokenizer)
    with torch.no_grad():
        logits = model(**tokenizer(PROMPT, return_tensors="pt")).logits[0, -1]
    before = torch.softmax(logits, -1)
    top_ids = [int(i) for i in torch.topk(before, 10).indices]
    for temperature, top_p in ((0.7, 0.5), (1.5, 0.9), (0.0, 0.9)):
        if temperature:
            after = torch.softmax(hf_warp(logits[None], temperature=temperature, top_p=top_p)[0], -1)
        else:
            after = torch.nn.functional.one_hot(torch.argmax(logits), len(logits)).float()
        got = call(lesson.next_token_distribution, model, tokenizer, PROMPT, temperature=temperature, top_p=top_p,
                   k=10)
        expect(isinstance(got, list) and len(got) == 10 and all(isinstance(row, dict) for row in got),
               lesson.next_token_distribution, "it must return k=10 dicts.", expected="10 dicts", got=got)
        expect([row.get("id") for row in got] == top_ids, lesson.next_token_distribution,
               "the tokens are not the 10 most probable, most probable first.", expected=top_ids,
               got=[row.get("id") for row in got], hint="torch.topk on the probabilities of the last position.")
        want_rows = [(round(float(before[i]), 5), round(float(after[i]), 5), bool(after[i] > 0)) for i in top_ids]
        got_rows = [(round(float(row.get("before", math.nan)), 5), round(float(row.get("after", math.nan)), 5),
                     row.get("kept")) for row in got]
        expect(all(math.isclose(g[0], w[0], abs_tol=2e-5) and math.isclose(g[1], w[1], abs_tol=2e-5) and g[2] == w[2]
                   for g, w in zip(got_rows, want_rows)), lesson.next_token_distribution,
               f"(before, after, kept) are off for temperature {temperature}, top-p {top_p}.",
               expected=want_rows[:5], got=got_rows[:5],
               hint="'after' is softmax(top_p_filter(apply_temperature(logits, t), p)); at temperature 0 it is "
                    "1 for the argmax.")
        expect(got[0].get("text") == tokenizer.decode([top_ids[0]]), lesson.next_token_distribution,
               "'text' should be the token's text.", expected=tokenizer.decode([top_ids[0]]), got=got[0].get("text"))
