"""Stage 1 checks: devices, loading, counting parameters, tokens, generating.

Fixed inputs only: a tiny model with the real tokenizer (see ``lessons/engine/tiny.py``),
saved to a temporary folder so loading is checked exactly as for a real model.
"""
import torch
from tokenizers.processors import TemplateProcessing

from checks.stage5.scripted import chain, last_token, scripted_llama
from checks.teacher import call, expect
from lessons.engine.tiny import lively_llama, tiny_llama


def test_pick_device_prefers_cuda(lesson, monkeypatch):
    """pick_device uses the GPU when there is one (CUDA first, then Apple's MPS), and the CPU otherwise."""
    has_mps = getattr(torch.backends, "mps", None) is not None

    def machine(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        if has_mps:
            monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    machine(cuda=True, mps=True)  # both at once: the order of the questions shows
    got = call(lesson.pick_device)
    expect(got == "cuda", lesson.pick_device, "with a CUDA GPU available it should be chosen, even beside MPS.",
           expected="'cuda'", got=got,
           hint=("Which question does your code ask first? The docstring names the order: cuda, mps, cpu."
                 if got == "mps" else "Which device is fastest when torch.cuda.is_available() is True?"))
    if has_mps:
        machine(cuda=False, mps=True)
        got = call(lesson.pick_device)
        expect(got == "mps", lesson.pick_device, "on an Apple GPU (MPS) without CUDA, MPS should be chosen.",
               expected="'mps'", got=got, hint="What does torch.backends.mps.is_available() say on a Mac?")
    machine(cuda=False, mps=False)
    got = call(lesson.pick_device)
    expect(got == "cpu", lesson.pick_device, "without any GPU the answer must be the CPU.",
           expected="'cpu'", got=got, hint="What is left when neither CUDA nor MPS is available?")


def test_load_model_and_tokenizer_from_a_folder(lesson, tokenizer, tmp_path):
    """load_model_and_tokenizer loads a causal LM and its tokenizer from a local folder."""
    tiny_llama(tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    result = call(lesson.load_model_and_tokenizer, str(tmp_path))
    expect(isinstance(result, tuple) and len(result) == 2, lesson.load_model_and_tokenizer,
           "it must return two things, (model, tokenizer).", expected="(model, tokenizer)", got=result)
    model, loaded_tokenizer = result
    expect(hasattr(model, "generate") and hasattr(model, "get_output_embeddings")
           and model.get_output_embeddings() is not None, lesson.load_model_and_tokenizer,
           "the model cannot predict next tokens (it has no language-model head).",
           expected="a model like LlamaForCausalLM", got=type(model).__name__,
           hint="AutoModel gives the body only; which Auto class adds the next-token head?")
    expect(callable(loaded_tokenizer) and hasattr(loaded_tokenizer, "decode"), lesson.load_model_and_tokenizer,
           "the second thing returned should be a tokenizer.", expected="a tokenizer", got=type(loaded_tokenizer).__name__,
           hint="Did you return (model, tokenizer) in that order?")
    expect(not model.training, lesson.load_model_and_tokenizer, "the model should be in evaluation mode.",
           expected="model.training == False", got=model.training, hint="Which method switches dropout off?")


def test_count_parameters(lesson, tiny_model):
    """count_parameters counts every number, and separately the trainable ones."""
    total = sum(p.numel() for p in tiny_model.parameters())
    got = call(lesson.count_parameters, tiny_model)
    expect(isinstance(got, dict) and {"total", "trainable"} <= set(got), lesson.count_parameters,
           "it must return a dict with 'total' and 'trainable'.", expected="{'total': ..., 'trainable': ...}", got=got)
    expect(got["total"] == total, lesson.count_parameters, "the total is off.", expected=total, got=got["total"],
           hint="Do you count numbers (p.numel()) rather than tensors?")
    tiny_model.model.embed_tokens.weight.requires_grad_(False)  # freeze the biggest tensor
    frozen = tiny_model.model.embed_tokens.weight.numel()
    got = call(lesson.count_parameters, tiny_model)
    expect(got["trainable"] == total - frozen, lesson.count_parameters,
           "after freezing the embedding, the trainable count must drop by its size.",
           expected=total - frozen, got=got["trainable"], hint="Which parameters have requires_grad set?")
    expect(got["total"] == total, lesson.count_parameters, "freezing must not change the total.",
           expected=total, got=got["total"])


def test_show_tokens(lesson, tokenizer):
    """show_tokens gives each token's string and id, in order, and the pieces rebuild the text."""
    text = "RECIPE: Pancakes\nINGREDIENTS: 1 cup flour"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    got = call(lesson.show_tokens, tokenizer, text)
    expect(isinstance(got, list) and all(isinstance(t, dict) for t in got), lesson.show_tokens,
           "it must return a list of dicts, one per token.", expected="[{'token': ..., 'id': ..., 'text': ...}, ...]",
           got=got)
    expect([t.get("id") for t in got] == ids, lesson.show_tokens, "the ids are not the tokenizer's ids for this text.",
           expected=ids, got=[t.get("id") for t in got],
           hint="Did special tokens sneak in? Use add_special_tokens=False.")
    tokens = tokenizer.convert_ids_to_tokens(ids)
    expect([t.get("token") for t in got] == tokens, lesson.show_tokens, "the token strings are off.",
           expected=tokens, got=[t.get("token") for t in got], hint="tokenizer.convert_ids_to_tokens(ids)")
    rebuilt = "".join(t.get("text", "") for t in got)
    expect(rebuilt == text, lesson.show_tokens, "the 'text' pieces joined together must give back the text.",
           expected=text, got=rebuilt, hint="Decode one id at a time: tokenizer.decode([token_id]).")


def test_show_tokens_shows_the_texts_own_tokens_only(lesson, tokenizer):
    """show_tokens shows the text's own tokens, even with a tokenizer that adds a start token (as Llama's adds <s>)."""
    start = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(  # what a Llama-2 tokenizer does to every text
        single=f"{start} $A", special_tokens=[(start, tokenizer.convert_tokens_to_ids(start))])
    text = "RECIPE: Pancakes"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    got = [t.get("id") for t in call(lesson.show_tokens, tokenizer, text)]
    expect(got == ids, lesson.show_tokens, f"a {start} token came in that is not part of the text.",
           expected=ids, got=got, hint="Which argument of tokenizer(...) keeps its special tokens out?")


def test_generate_text_hides_special_tokens(lesson, tokenizer):
    """generate_text returns words: the model's end-of-text token is not part of the recipe."""
    prompt = "RECIPE: Toast\nINGREDIENTS:"
    model = scripted_llama(tokenizer, chain(tokenizer, [last_token(tokenizer, prompt)], " bread, butter",
                                            tokenizer.eos_token_id))  # writes two words, then its end token
    got = call(lesson.generate_text, model, tokenizer, prompt, max_new_tokens=8, temperature=0)
    expect(got == " bread, butter", lesson.generate_text, f"the model's {tokenizer.eos_token} token came back "
           "as text.", expected=" bread, butter", got=got,
           hint="tokenizer.decode has an argument that leaves special tokens out: which?")


def _continuation(model, tokenizer, prompt: str, max_new_tokens: int, **sampling) -> tuple[str, list[int], int]:
    """transformers' own continuation: (new text, every id of the output, how many of them are the prompt's)."""
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                            **(sampling or {"do_sample": False}))
    start = inputs["input_ids"].shape[1]
    return tokenizer.decode(output[0, start:], skip_special_tokens=True), output[0].tolist(), start


def _slice_hint(got: str, tokenizer, ids: list[int], start: int, want: str) -> str:
    """A hint that names the mistake the text shows: a slice off by a token, or too many or too few tokens."""
    for shift, words in ((-1, "one token too early: the prompt's last token came back"),
                         (1, "one token too late: the first new token is missing")):
        if got == tokenizer.decode(ids[start + shift:], skip_special_tokens=True):
            return (f"The text starts {words}. How many tokens does the prompt have, and at which index "
                    "does the first new one sit?")
    if got and (want.startswith(got) or got.startswith(want)):
        return "The text starts right but its length is off: is max_new_tokens passed on to generate?"
    return "temperature=0 means do_sample=False: is that what generate was asked for?"


def test_generate_text_returns_only_new_text(lesson, tokenizer):
    """generate_text returns only what the model added, at most max_new_tokens of it."""
    model = lively_llama(tokenizer)  # its greedy text is not one token repeated, so a slice off by one shows
    prompt = "RECIPE: Tomato Soup\nINGREDIENTS:"
    got = call(lesson.generate_text, model, tokenizer, prompt, max_new_tokens=12, temperature=0)
    expect(isinstance(got, str), lesson.generate_text, "it must return text (a str).", expected="a str", got=got)
    expect(not got.startswith(prompt), lesson.generate_text, "the prompt came back too: return only the new text.",
           expected="text after the prompt", got=got, hint="How many tokens at the start of the output are the prompt's?")
    want, ids, start = _continuation(model, tokenizer, prompt, 12)
    expect(got == want, lesson.generate_text, "with temperature=0 the output must be the greedy continuation.",
           expected=want, got=got, hint=_slice_hint(got, tokenizer, ids, start, want))


def test_generate_text_passes_temperature_and_top_p(lesson, tokenizer):
    """generate_text samples with the temperature and top_p it is given, not with generate's defaults."""
    model = lively_llama(tokenizer)  # peaked like a real model: temperature and top-p change what it writes
    prompt = "RECIPE: Banana Pancakes\nINGREDIENTS:"
    greedy = call(lesson.generate_text, model, tokenizer, prompt, max_new_tokens=10, temperature=0)
    # Each setting leaves only the most probable token worth drawing, so sampling must give your greedy text;
    # generate's defaults (temperature 1, top_p 1) draw from far more tokens and almost never do.
    for settings, name, why in (({"temperature": 1.0, "top_p": 0.01}, "top_p",
                                 "with top_p=0.01 only the most probable token is left in the nucleus"),
                                ({"temperature": 0.01, "top_p": 1.0}, "temperature",
                                 "temperature 0.01 makes the most probable token all but certain")):
        for seed in (0, 1, 2):
            got = call(lesson.generate_text, model, tokenizer, prompt, max_new_tokens=10, seed=seed, **settings)
            expect(got == greedy, lesson.generate_text, f"{why}, so it must write what temperature=0 writes "
                   f"(settings {settings}, seed {seed}).", expected=greedy, got=got,
                   hint=f"Does the {name} you were given reach model.generate, or does generate use its own default?")


def test_generate_text_seed_repeats(lesson, tiny_model, tokenizer):
    """generate_text with the same seed gives the same text; sampling does sample."""
    prompt = "RECIPE: Banana Pancakes\nINGREDIENTS:"
    first = call(lesson.generate_text, tiny_model, tokenizer, prompt, max_new_tokens=15, temperature=1.0, seed=3)
    again = call(lesson.generate_text, tiny_model, tokenizer, prompt, max_new_tokens=15, temperature=1.0, seed=3)
    expect(first == again, lesson.generate_text, "the same seed must give the same text.",
           expected=first, got=again, hint="Set torch.manual_seed(seed) before generating.")
    others = {call(lesson.generate_text, tiny_model, tokenizer, prompt, max_new_tokens=15, temperature=1.0, seed=s)
              for s in range(4, 8)}
    expect(len(others | {first}) > 1, lesson.generate_text, "different seeds always gave the same text: "
           "with temperature 1 the model should sample.", expected="some variety", got=sorted(others),
           hint="With temperature > 0, pass do_sample=True to generate.")
