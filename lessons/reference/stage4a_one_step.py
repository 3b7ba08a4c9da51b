"""Stage 4A — One training step: loss, gradients, and a small nudge.

Before handing training to a library, do one step of it by hand. Every one of
the thousands of steps a fine-tuning run takes is exactly this:

1. **Batch**: take a few tokenized recipes and stack them into tensors.
2. **Forward**: the model scores every possible next token at every position;
   the *loss* says how surprised it was by the tokens that really came next.
3. **Backward**: for every parameter, the *gradient* says which way, and how
   strongly, a small nudge of that number would change the loss.
4. **Step**: the optimizer nudges every parameter a little against its
   gradient, so the same text becomes a little less surprising.
5. **Zero** the gradients, ready for the next batch.

Loss as surprise
----------------
At each position the model gives the actual next token a probability ``p``.
Its *surprise* is ``-log p``: 0 when it was sure and right (p = 1), 0.69 for a
coin flip (p = 0.5), 4.6 when it gave the token 1 % (p = 0.01). The loss is the
average surprise over all the real tokens of the batch (padding does not count).
This is *cross-entropy*.

``exp(loss)`` turns the average surprise back into a count, the *perplexity*:
roughly "how many tokens the model hesitates between" at each position. A
model that knows nothing spreads its bets evenly over all 49,152 tokens of the
vocabulary: loss ``ln(49152) ≈ 10.8``, perplexity 49,152. SmolLM2 on our
recipes starts near loss 2.9, perplexity ≈ 17.5: it hesitates between about
17 tokens. Fine-tuning brings that down.

Labels are the inputs themselves: the text is its own answer key. The model
shifts them by one inside: the scores at position ``t`` are compared with the
token at position ``t + 1``. That is why this is called *causal* (or
next-token) language modelling, and why no one has to label recipes by hand.

Gradients, and why one step is not enough
-----------------------------------------
A gradient is one number per parameter: how much the loss would rise if that
parameter grew a tiny bit. Step against it and the loss falls, but only close
by: the gradient describes the slope *here*. So steps are small on purpose:
AdamW moves each number by about the learning rate (2e-4), a few hundredths of
a percent of its size.

And yet, on the four recipes it just stepped on, SmolLM2's loss falls from
2.99 to 1.95 after one step with all its parameters training. 135 million
small nudges, all chosen for *these* four recipes, add up: the model starts to
memorise them. On four recipes it has not seen, the same step moves the loss
far less: 2.94 to 2.78. One batch is a noisy sample of all recipes; what
carries over to new recipes is what many batches agree on. That is why training takes hundreds
of steps over many different recipes, and why we watch the loss on held-out
recipes (the validation loss), not on the batch just learned.

PyTorch *adds* each new gradient to the one already stored in ``.grad`` (useful
to sum several small batches into one big one). A training loop therefore
zeroes the gradients after each step; forget it, and step two pushes with
step one's gradient still in it, and so on: the steps grow and point the wrong way.

Fill in the TODOs top to bottom, then run ``.venv/bin/python -m pytest checks/stage4a``
in the project folder.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import DataCollatorForLanguageModeling

from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

# The label the loss skips: PyTorch's cross_entropy ignores targets equal to -100
# (its default ``ignore_index``), so padding positions carry -100 as their label.
IGNORE_INDEX = -100
# The columns a model eats. Text columns ("title", "text") cannot become tensors.
MODEL_INPUTS = ("input_ids", "attention_mask")


def make_collator(tokenizer) -> DataCollatorForLanguageModeling:
    """The collator that turns a list of tokenized examples into one batch of tensors.

    A *collator* stacks examples into tensors and adds ``labels``, the answer
    key the loss compares with. For next-token prediction the labels are the
    ``input_ids`` themselves, except that padding positions get ``-100`` so the
    loss ignores them (the model shifts labels by one on its own).

    transformers has one collator for two kinds of language modelling:
    *masked* (BERT: hide 15 % of the tokens and guess them from both sides) and
    *causal* (GPT, Llama, SmolLM2: guess each token from the ones before it).
    We need the causal kind.

    Example:
        >>> collator = make_collator(tokenizer)
        >>> batch = collator([{"input_ids": [5, 6, 2, 2], "attention_mask": [1, 1, 0, 0]}])
        >>> batch["labels"]        # padding (id 2 here) → -100
        tensor([[   5,    6, -100, -100]])
    """
    ### BEGIN SOLUTION
    ### HINT: Does SmolLM2 guess hidden tokens from both sides, or the next token from the ones before it?
    ### HINT: Which argument of DataCollatorForLanguageModeling chooses masked language modelling?
    return DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
    ### END SOLUTION


def first_batch(tokenized_dataset, collator, batch_size: int = 4) -> dict[str, torch.Tensor]:
    """The first ``batch_size`` examples of a tokenized dataset, collated into one batch.

    This is exactly what the model sees in one training step: a dict of
    tensors, each of shape ``(batch_size, sequence_length)``.

    Args:
        tokenized_dataset: rows with ``input_ids`` and ``attention_mask`` (stage 3's
            output); other columns such as ``title`` are left out.
        collator: from ``make_collator``.
        batch_size: how many examples go into the batch.

    Example:
        >>> batch = first_batch(tokenized["train"], make_collator(tokenizer), batch_size=4)
        >>> {name: tuple(tensor.shape) for name, tensor in batch.items()}
        {'input_ids': (4, 256), 'attention_mask': (4, 256), 'labels': (4, 256)}
    """
    ### BEGIN SOLUTION
    ### HINT: The collator takes a *list* of examples (dicts); which rows are the first batch_size?
    ### HINT: Can a title become a tensor? Keep only the columns in MODEL_INPUTS.
    ### PARTIAL: examples = [tokenized_dataset[i] for i in range(batch_size)]
    examples = [tokenized_dataset[i] for i in range(batch_size)]
    return collator([{name: example[name] for name in MODEL_INPUTS if name in example} for example in examples])
    ### END SOLUTION


def loss_by_hand(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Cross-entropy the long way: the average surprise at each actual next token.

    Args:
        logits: the model's scores, shape ``(batch, positions, vocabulary)``.
        labels: the answer key, shape ``(batch, positions)``, ``-100`` where nothing counts.

    Returns (show your work, for the dashboard's chart):
        ``{"loss": the mean surprise (a 0-dim tensor), "perplexity": exp(loss) as a float,
        "surprise": (batch, positions - 1) tensor of -log p per predicted token, 0 where ignored,
        "counted": how many tokens were averaged}``

    Steps:
        1. shift: the scores at position t predict the token at t + 1, so pair
           ``logits[:, :-1]`` with ``labels[:, 1:]``;
        2. turn scores into log-probabilities with ``log_softmax`` over the vocabulary;
        3. pick, at each position, the log-probability of the actual next token;
        4. surprise = minus that; average it over the positions whose label is not -100.

    Example (a vocabulary of 2 tokens, one prediction):
        >>> logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])   # no preference: p = 0.5 each
        >>> loss_by_hand(logits, torch.tensor([[0, 1]]))["loss"]
        tensor(0.6931)                                             # -log(0.5)
    """
    ### BEGIN SOLUTION
    ### HINT: Which scores predict the token at position 1? Which label does position 0's score go with?
    ### HINT: log_softmax(...).gather(-1, ...) picks one log-probability per position; what index would -100 be?
    ### PARTIAL: scores, targets = logits[:, :-1, :], labels[:, 1:]
    ### PARTIAL: counted = targets != IGNORE_INDEX
    scores, targets = logits[:, :-1, :], labels[:, 1:]                   # (B, T-1, V), (B, T-1)
    counted = targets != IGNORE_INDEX                                     # (B, T-1)
    log_probs = F.log_softmax(scores.float(), dim=-1)                     # (B, T-1, V)
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    surprise = torch.where(counted, -picked, torch.zeros_like(picked))
    loss = surprise.sum() / counted.sum()
    return {"loss": loss, "perplexity": math.exp(loss.item()), "surprise": surprise.detach(),
            "counted": int(counted.sum())}
    ### END SOLUTION


def forward_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run the model on a batch and return its loss: a 0-dim tensor that remembers how it was made.

    Hugging Face models compute the cross-entropy themselves when ``labels`` are
    among their inputs (shifted and with -100 ignored, as in ``loss_by_hand``).
    The tensors must be on the same device as the model.

    Example:
        >>> loss = forward_loss(model, batch)
        >>> loss
        tensor(2.9884, grad_fn=<...>)       # SmolLM2 on four recipes of 256 tokens; exp(2.99) ≈ 19.9
    """
    ### BEGIN SOLUTION
    ### HINT: Call the model with the batch's tensors as keyword arguments (model(**...)); where does it put the loss?
    ### HINT: Are the batch's tensors on model.device?
    ### PARTIAL: batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
    batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
    outputs = model(**batch)
    return outputs.loss
    ### END SOLUTION


def layer_of(parameter_name: str) -> str:
    """The layer a parameter belongs to, for a chart by layer.

    Everything up to the layer number, or the module when there is no number:

        >>> layer_of("model.layers.3.self_attn.q_proj.weight")
        'model.layers.3'
        >>> layer_of("model.embed_tokens.weight")
        'model.embed_tokens'
    """
    parts = parameter_name.split(".")
    for index, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: index + 1])
    return ".".join(parts[:-1]) or parameter_name


def backward_and_inspect(model, loss: torch.Tensor) -> dict:
    """Compute the gradients of ``loss``, measure them layer by layer, then zero them.

    ``loss.backward()`` fills ``parameter.grad`` for every parameter that
    requires a gradient. The size of a gradient is its *norm*, the square root
    of the sum of its squared numbers (Pythagoras, in many dimensions); the norm
    of a whole layer combines all of its parameters' numbers in the same way,
    and ``total_norm`` combines every number in the model.

    Returns (show your work, for the dashboard's chart of gradient norms by layer):
        ``{"layers": [{"name": "model.embed_tokens", "grad_norm": 2.51}, ...] in model order,
        "total_norm": 6.60, "loss": 2.99}``

    The gradients are zeroed at the end (``set_to_none``), so that inspecting
    them leaves the model as it was.

    Example:
        >>> report = backward_and_inspect(model, forward_loss(model, batch))
        >>> [layer["name"] for layer in report["layers"]][:3]
        ['model.embed_tokens', 'model.layers.0', 'model.layers.1']
        >>> sorted(report["layers"], key=lambda layer: -layer["grad_norm"])[:2]   # SmolLM2, four recipes
        [{'name': 'model.layers.0', 'grad_norm': 3.41}, {'name': 'model.embed_tokens', 'grad_norm': 2.51}]
    """
    ### BEGIN SOLUTION
    ### HINT: After loss.backward(), where does each parameter keep its gradient?
    ### HINT: A layer's norm is sqrt(sum of the squares of all its gradient numbers); group with layer_of(name).
    ### HINT: What would the next backward() do with gradients you leave behind?
    ### PARTIAL: loss.backward()
    ### PARTIAL: squares: dict[str, float] = {}   # layer name -> sum of squared gradient numbers
    loss.backward()
    squares: dict[str, float] = {}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            layer = layer_of(name)
            squares[layer] = squares.get(layer, 0.0) + parameter.grad.detach().float().pow(2).sum().item()
    model.zero_grad(set_to_none=True)
    return {"layers": [{"name": layer, "grad_norm": math.sqrt(total)} for layer, total in squares.items()],
            "total_norm": math.sqrt(sum(squares.values())), "loss": loss.item()}
    ### END SOLUTION


def training_step(model, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> float:
    """One whole training step: forward, backward, optimizer step, zero the gradients.

    Returns the loss *before* the step, as a plain float (``.item()``): a
    float holds no gradient history, so a list of them never fills the memory.

    The model goes into training mode first (``model.train()``): layers such as
    dropout behave differently while training.

    Example:
        >>> optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
        >>> [round(training_step(model, batch, optimizer), 3) for _ in range(3)]
        [2.988, 1.952, 1.304]            # SmolLM2, the same four recipes: it is memorising them
    """
    ### BEGIN SOLUTION
    ### HINT: forward_loss gives the loss; which call fills the gradients, and which one uses them?
    ### HINT: PyTorch adds every new gradient to the old one: what must happen before the next step?
    ### PARTIAL: model.train()
    ### PARTIAL: loss = forward_loss(model, batch)
    model.train()
    loss = forward_loss(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()
    ### END SOLUTION


def one_step_report(model, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, *,
                    other_batch: dict[str, torch.Tensor] | None = None) -> dict:
    """What one step changes: the loss on the batch it learned from, on other recipes, and the weights.

    Uses your ``forward_loss`` and ``training_step``; nothing to fill in. The
    dashboard draws it to show why learning takes many steps.

    Args:
        other_batch: recipes the step does not see (default none); their loss is
            measured before and after too.

    Returns ``loss_before``/``loss_after`` (on ``batch``), ``loss_change``,
    ``other_before``/``other_after`` (on ``other_batch``, or None), and
    ``largest_relative_change``: the most any weight tensor moved, relative to its largest number.

    Example (SmolLM2, AdamW at lr 2e-4 on all its parameters, four recipes of 256 tokens):
        >>> one_step_report(model, batch, torch.optim.AdamW(model.parameters(), lr=2e-4), other_batch=other)
        {'loss_before': 2.988, 'loss_after': 1.952, 'loss_change': -1.036, 'other_before': 2.936,
         'other_after': 2.784, 'largest_relative_change': 0.00068}
    """
    def measure(inputs):
        with torch.no_grad():
            return None if inputs is None else forward_loss(model, inputs).item()

    before_weights = [parameter.detach().clone() for parameter in model.parameters()]
    other_before = measure(other_batch)
    loss_before = training_step(model, batch, optimizer)
    loss_after, other_after = measure(batch), measure(other_batch)
    largest = max(((after.detach() - before).abs().max() / before.abs().max().clamp(min=1e-12)).item()
                  for before, after in zip(before_weights, model.parameters()))
    return {"loss_before": loss_before, "loss_after": loss_after, "loss_change": loss_after - loss_before,
            "other_before": other_before, "other_after": other_after, "largest_relative_change": largest}
