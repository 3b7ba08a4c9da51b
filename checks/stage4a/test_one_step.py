"""Stage 4A checks: the collator, one batch, the loss, the gradients, one training step.

Fixed inputs only: four recipes from ``data/fixtures/formatted_recipes.jsonl``,
tokenized here (never by your stage 3), and a tiny model with the real
tokenizer. Every result is compared with a trusted computation (PyTorch's own
cross-entropy and gradients, transformers' own collator).
"""
import copy
import json
import math
import re
from collections.abc import Mapping

import pytest
import torch
import torch.nn.functional as F
from transformers import DataCollatorForLanguageModeling

from checks.teacher import CheckFailed, call, expect, fail
from lessons.engine.paths import DATA_DIR
from lessons.engine.tiny import tiny_llama

# Short sequences keep the checks fast; four recipes, two of them shorter than
# MAX_LENGTH tokens, so the batch has padding the loss must skip.
MAX_LENGTH = 96
FIXTURE_ROWS = (0, 8, 1, 21)


def fixture_texts() -> list[str]:
    rows = [json.loads(line) for line in (DATA_DIR / "fixtures" / "formatted_recipes.jsonl").open()]
    return [rows[i]["text"] for i in FIXTURE_ROWS]


@pytest.fixture
def examples(tokenizer) -> list[dict]:
    """Four tokenized recipes, padded to MAX_LENGTH, as plain lists (as stage 3 makes them)."""
    encoded = tokenizer(fixture_texts(), truncation=True, max_length=MAX_LENGTH, padding="max_length")
    rows = [{"title": f"recipe {i}", "input_ids": ids, "attention_mask": mask}
            for i, (ids, mask) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"]))]
    assert any(0 in row["attention_mask"] for row in rows), "the fixture batch should contain padding"
    return rows


@pytest.fixture
def batch(tokenizer, examples) -> dict[str, torch.Tensor]:
    """The trusted batch: transformers' causal collator on the four examples."""
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
    return collator([{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]} for e in examples])


def trusted_loss(model, batch) -> torch.Tensor:
    """Cross-entropy on shifted logits, computed here with PyTorch's own function."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch["labels"][:, 1:].reshape(-1),
                           ignore_index=-100)


def test_make_collator_is_causal(lesson, tokenizer, examples):
    """make_collator makes next-token labels: the inputs themselves, with padding set to -100."""
    collator = call(lesson.make_collator, tokenizer)
    expect(isinstance(collator, DataCollatorForLanguageModeling), lesson.make_collator,
           "it should return transformers' DataCollatorForLanguageModeling.",
           expected="DataCollatorForLanguageModeling(...)", got=type(collator).__name__)
    expect(collator.mlm is False, lesson.make_collator, "this collator is set up for *masked* language modelling.",
           expected="mlm=False", got=f"mlm={collator.mlm!r}",
           hint="Does SmolLM2 guess hidden tokens from both sides, or the next one from those before it?")
    plain = [{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]} for e in examples]
    batch = call(collator, plain)
    input_ids = torch.tensor([e["input_ids"] for e in examples])
    mask = torch.tensor([e["attention_mask"] for e in examples])
    expect(torch.equal(batch["input_ids"], input_ids), lesson.make_collator,
           "the collator changed the input tokens; a causal model must see the text as it is.",
           expected="input_ids unchanged", got="some tokens replaced", show_got=False,
           hint="Which kind of language modelling hides tokens from the model?")
    want = torch.where(mask.bool(), input_ids, torch.full_like(input_ids, -100))
    labels = batch.get("labels")
    expect(labels is not None and torch.equal(labels, want), lesson.make_collator,
           "the labels should be the input_ids, with -100 at every padding position.",
           expected=want[1].tolist()[-8:], got=None if labels is None else labels[1].tolist()[-8:],
           hint="The text is its own answer key; which positions must the loss skip?")


def _blame_text_columns(lesson, dataset, collator, error: CheckFailed) -> None:
    """first_batch failed on rows with a 'title': if it works without that column, say that the title is why."""
    try:
        lesson.first_batch(dataset.remove_columns(["title"]), collator, 3)
    except Exception:  # noqa: BLE001 - it fails for another reason too: the original message tells it
        return
    fail(lesson.first_batch, "the collator was given the 'title' column too, and a title cannot become a tensor.",
         expected="only input_ids and attention_mask handed to the collator",
         got=str(error).splitlines()[0][:160] + " …",
         hint="The library's error suggests padding; but which column does it name? Which columns can "
              "become tensors (MODEL_INPUTS)?")


def test_first_batch(lesson, tokenizer, examples):
    """first_batch collates the first batch_size examples into tensors, leaving text columns out."""
    from datasets import Dataset

    dataset = Dataset.from_list(examples + examples[:2])  # six rows; the first four make the batch
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
    try:
        got = call(lesson.first_batch, dataset, collator, 3)
    except CheckFailed as error:
        _blame_text_columns(lesson, dataset, collator, error)
        raise
    expect(isinstance(got, Mapping) and all(isinstance(v, torch.Tensor) for v in got.values()), lesson.first_batch,
           "it should return the collator's dict of tensors.", expected="{'input_ids': tensor, ...}",
           got=type(got).__name__)
    expect({"input_ids", "attention_mask", "labels"} <= set(got), lesson.first_batch,
           "the batch lacks some of input_ids, attention_mask, labels.",
           expected="input_ids, attention_mask, labels", got=sorted(got))
    expect(tuple(got["input_ids"].shape) == (3, MAX_LENGTH), lesson.first_batch,
           "the batch has the wrong shape for batch_size=3.", expected=(3, MAX_LENGTH),
           got=tuple(got["input_ids"].shape), hint="How many rows does batch_size ask for?")
    want = torch.tensor([e["input_ids"] for e in examples[:3]])
    expect(torch.equal(got["input_ids"], want), lesson.first_batch, "these are not the first three examples, in order.",
           expected="rows 0, 1, 2", got="other rows", show_got=False,
           hint="Is the dataset shuffled, or started past 0?")


def _loss_hint(loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> str:
    """A hint for the mistake this loss shows: no shift, a shift the wrong way, or padding averaged in."""
    def mean_surprise(scores, targets, *, over_padding=False):
        surprise = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1), ignore_index=-100,
                                   reduction="none")  # 0 where the label is -100
        return surprise.mean() if over_padding else surprise.sum() / (targets != -100).sum()

    unshift = "Each position's scores should be compared with the token after it: which labels go with logits[:, :-1]?"
    padding = "The -100 positions are padding: do they count in your average? Divide by the tokens that count."
    known = [
        (mean_surprise(logits, labels), "That is the loss without the shift. " + unshift),
        (mean_surprise(logits[:, :-1], labels[:, :-1]), "The scores are compared with the token at the same "
                                                        "position, not the next one. " + unshift),
        (mean_surprise(logits[:, 1:], labels[:, :-1]), "The shift goes the wrong way: the scores at t are compared "
                                                       "with the token at t - 1. Which end do you cut from each?"),
        (mean_surprise(logits[:, :-1], labels[:, 1:], over_padding=True), "The shift is right, but the average "
                                                                          "is over every position. " + padding),
        (mean_surprise(logits[:, :-1], labels[:, 1:].clamp(min=0)), "Padding was scored as if its label were "
                                                                    "token 0. " + padding),
        (mean_surprise(logits, labels, over_padding=True), "Two things: there is no shift, and padding is "
                                                           "averaged in. " + unshift),
    ]
    for value, hint in known:
        if torch.allclose(loss, value, atol=1e-5):
            return hint
    return "Is it -log p of the *actual* next token, averaged over positions whose label is not -100?"


def test_loss_by_hand_matches_cross_entropy(lesson):
    """loss_by_hand computes the mean surprise at each next token, as torch's cross_entropy does."""
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11)
    labels = torch.randint(0, 11, (2, 7))
    labels[0, 5:] = -100  # padding at the end of the first row
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    got = call(lesson.loss_by_hand, logits, labels)
    expect(isinstance(got, dict) and "loss" in got, lesson.loss_by_hand, "it should return a dict with 'loss'.",
           expected="{'loss': ..., 'perplexity': ..., 'surprise': ..., 'counted': ...}", got=got)
    loss = torch.as_tensor(got["loss"], dtype=torch.float32)
    expect(torch.allclose(loss, want, atol=1e-5), lesson.loss_by_hand, "the loss differs from cross-entropy.",
           expected=round(want.item(), 5), got=round(loss.item(), 5), hint=_loss_hint(loss, logits, labels))
    expect(got.get("counted") == 4 + 6, lesson.loss_by_hand, "the number of counted tokens is off.",
           expected=10, got=got.get("counted"),
           hint="After the shift, row 0 has 4 labels that are not -100 and row 1 has 6: are both shifted and masked?")
    expect(math.isclose(got.get("perplexity", 0), math.exp(want.item()), rel_tol=1e-4), lesson.loss_by_hand,
           "perplexity should be exp(loss).", expected=math.exp(want.item()), got=got.get("perplexity"))
    surprise = got.get("surprise")
    expect(isinstance(surprise, torch.Tensor) and tuple(surprise.shape) == (2, 6), lesson.loss_by_hand,
           "'surprise' should hold -log p for each predicted position, shape (batch, positions - 1).",
           expected=(2, 6), got=None if surprise is None else tuple(getattr(surprise, "shape", ())))
    uniform = call(lesson.loss_by_hand, torch.zeros(1, 3, 11), torch.tensor([[1, 2, 3]]))
    expect(math.isclose(float(uniform["loss"]), math.log(11), rel_tol=1e-5), lesson.loss_by_hand,
           "a model with no preference among 11 tokens should have loss ln(11).", expected=math.log(11),
           got=float(uniform["loss"]), hint="What is -log(1/11)?")


def test_forward_loss_matches_cross_entropy(lesson, tiny_model, batch):
    """forward_loss returns the model's loss: cross-entropy on shifted logits, padding ignored."""
    got = call(lesson.forward_loss, tiny_model, batch)
    expect(isinstance(got, torch.Tensor) and got.dim() == 0, lesson.forward_loss,
           "it should return the loss as a 0-dim tensor (not a float, not the whole output).",
           expected="tensor(10.8...)", got=got, hint="Which field of the model's output holds the loss?")
    expect(got.requires_grad, lesson.forward_loss, "the loss has no gradient history, so backward() cannot run.",
           expected="a loss with grad_fn", got=got,
           hint="Was it computed under torch.no_grad(), or turned into a float?")
    with torch.no_grad():
        want = trusted_loss(tiny_model, batch)
    expect(torch.allclose(got.detach().float(), want, atol=1e-4), lesson.forward_loss,
           "the loss differs from cross-entropy on the shifted logits.", expected=round(want.item(), 4),
           got=round(got.item(), 4), hint="Did the labels reach the model? Are they the collator's labels?")


def test_backward_and_inspect(lesson, tiny_model, batch):
    """backward_and_inspect reports each layer's gradient norm and the total, then zeroes the gradients."""
    trusted = copy.deepcopy(tiny_model)
    trusted_loss(trusted, batch).backward()
    want: dict[str, float] = {}  # layer -> sum of squared gradient numbers, in model order
    for name, parameter in trusted.named_parameters():
        numbered = re.match(r"(.*?\.\d+)\.", name)  # "model.layers.0.mlp.up_proj.weight" -> "model.layers.0"
        layer = numbered.group(1) if numbered else name.rsplit(".", 1)[0]
        want[layer] = want.get(layer, 0.0) + parameter.grad.pow(2).sum().item()
    total = math.sqrt(sum(want.values()))

    loss = call(lesson.forward_loss, tiny_model, batch)
    got = call(lesson.backward_and_inspect, tiny_model, loss)
    expect(isinstance(got, dict) and "layers" in got and "total_norm" in got, lesson.backward_and_inspect,
           "it should return {'layers': [...], 'total_norm': ...}.", expected="{'layers': [...], 'total_norm': ...}",
           got=got)
    norms = {entry["name"]: entry["grad_norm"] for entry in got["layers"]}
    expect(list(norms) == list(want), lesson.backward_and_inspect, "the layers are not the model's, in order.",
           expected=list(want), got=list(norms),
           hint="Group the parameters with layer_of(name), in named_parameters order.")
    for layer, squares in want.items():
        expect(math.isclose(norms[layer], math.sqrt(squares), rel_tol=1e-3), lesson.backward_and_inspect,
               f"the gradient norm of {layer} is off.", expected=math.sqrt(squares), got=norms[layer],
               hint="The norm is the square root of the sum of *all* the squared gradient numbers of the layer.")
    expect(math.isclose(got["total_norm"], total, rel_tol=1e-3), lesson.backward_and_inspect,
           "the total norm is off.", expected=total, got=got["total_norm"],
           hint="Square each layer's norm, add them up, take the square root.")
    leftover = [name for name, p in tiny_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    expect(not leftover, lesson.backward_and_inspect, "the gradients are still there after inspecting them.",
           expected="every .grad None or zero", got=leftover[:3],
           hint="What would the next backward() add these to?")


def test_training_step_trains_in_training_mode(lesson, tokenizer, batch):
    """training_step puts the model in training mode, so dropout is on during the step."""
    model = tiny_llama(tokenizer, dropout=0.1)  # handed over in evaluation mode; with dropout the mode shows
    trusted = copy.deepcopy(model).train()
    torch.manual_seed(0)  # the same dropout draws for the trusted step and for yours
    with torch.no_grad():
        want = trusted_loss(trusted, batch).item()
        evaluation = trusted_loss(copy.deepcopy(model), batch).item()
    torch.manual_seed(0)
    got = call(lesson.training_step, model, batch, torch.optim.SGD(model.parameters(), lr=0.5))
    expect(model.training, lesson.training_step,
           "after training_step the model is still in evaluation mode: its dropout was off during the step.",
           expected="model.training == True", got=f"model.training == {model.training}",
           hint="Layers such as dropout behave differently while training: which call tells the model so?")
    expect(isinstance(got, float) and math.isclose(got, want, rel_tol=1e-4), lesson.training_step,
           "the loss is not the loss with dropout on, as training computes it.", expected=want, got=got,
           hint=("That is the loss in evaluation mode: is the model switched to training before the forward pass?"
                 if isinstance(got, float) and math.isclose(got, evaluation, rel_tol=1e-4) else
                 "Is the loss returned the one computed before the optimizer step?"))


def test_training_step_matches_two_trusted_steps(lesson, tiny_model, batch):
    """training_step does forward, backward, step and zero: two of them match two trusted steps."""
    trusted = copy.deepcopy(tiny_model).train()
    trusted_optimizer = torch.optim.SGD(trusted.parameters(), lr=0.5)
    trusted_losses = []
    for _ in range(2):
        loss = trusted_loss(trusted, batch)
        loss.backward()
        trusted_optimizer.step()
        trusted_optimizer.zero_grad()
        trusted_losses.append(loss.item())

    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.5)
    losses = [call(lesson.training_step, tiny_model, batch, optimizer) for _ in range(2)]
    expect(all(isinstance(value, float) for value in losses), lesson.training_step,
           "it should return the loss as a plain float.", expected="a float such as 10.82", got=losses[0],
           hint="Which tensor method gives a Python number?")
    expect(math.isclose(losses[0], trusted_losses[0], rel_tol=1e-4), lesson.training_step,
           "the first loss is not the loss of the batch before the step.", expected=trusted_losses[0], got=losses[0])
    drift = max((a - b).abs().max().item() for a, b in zip(tiny_model.parameters(), trusted.parameters()))
    expect(drift < 1e-4, lesson.training_step,
           "after two steps the weights differ from two trusted steps: the second step pushed with the wrong gradient.",
           expected="the same weights (difference < 1e-4)", got=f"largest difference {drift:.4g}",
           hint="PyTorch adds every backward() to the gradient already there; what must happen between steps?")
    expect(losses[1] < losses[0], lesson.training_step, "the loss did not go down on the same batch after one step.",
           expected=f"< {losses[0]:.4f}", got=losses[1], hint="Does optimizer.step() run after backward()?")


def test_one_step_lowers_the_loss_with_small_nudges(lesson, tiny_model, batch):
    """One AdamW step at lr 2e-4 lowers the loss on its own batch while every weight moves only a little."""
    other = {name: tensor.flip(0) for name, tensor in batch.items()}  # the same recipes in another order
    optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=2e-4)
    got = call(lesson.one_step_report, tiny_model, batch, optimizer, other_batch=other)
    expect(got["loss_after"] < got["loss_before"], lesson.training_step,
           "after one step the same batch should be (a little) less surprising.",
           expected=f"loss_after < {got['loss_before']:.4f}", got=got["loss_after"],
           hint="Does the step follow the gradient downhill (optimizer.step() after loss.backward())?")
    expect(got["largest_relative_change"] < 0.05, lesson.training_step, "one small step changed the weights a lot.",
           expected="less than 5 % change in any tensor", got=got["largest_relative_change"])
    expect(math.isclose(got["other_before"], got["loss_before"], rel_tol=1e-4), lesson.forward_loss,
           "the loss of a batch should not depend on the order of its rows.", expected=got["loss_before"],
           got=got["other_before"], hint="Is the loss averaged over every real token of the batch?")
