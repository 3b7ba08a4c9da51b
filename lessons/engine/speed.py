"""The speed tricks of the lab's training, together: each changes how fast a step runs, never what it computes.

One line of why for each (measured figures in their docstrings and in ``docs/benchmarks.md``; the bench's
speed ladder, ``python -m lessons bench``, adds them one at a time):

* ``length_grouped_order`` + ``drop_padding``: batches of recipes of nearly one length, each padded only to
  its longest, so little compute goes to padding (4 % of the tokens instead of 24 % padded to 256).
* ``PackingCollator`` / ``packing_collator`` (where ``supports_packing``): no padding at all, a step's
  recipes end to end in one row, each attending only to itself.
* ``without_right_padding_mask``: a right-padded batch needs no mask in a causal model, and without one
  SDPA runs its faster plain causal path.
* ``FrozenInBf16``: under bf16 autocast the frozen weights are converted to bfloat16 once, not at every step.
* ``speed_up_trainable_tokens`` (guarded by ``trainable_tokens_patch_problem``): training ``[END]``'s
  embedding row computes a gradient for that row, not for all 49,153.
* ``ChunkedLoss``: the output layer and the loss a slice of tokens at a time, never the vocabulary-wide
  logits at once. It stays its own module, ``lessons/engine/chunked_loss.py`` (its maths and its measured
  slice sizes fill 230 lines); it is imported here so that every trick can be found in this one place.

``lessons.engine.training.run_training`` switches them on (``TrainSettings``); the bench's ladder
(``lessons.bench.ladder``) measures each.
"""
from __future__ import annotations

from .chunked_loss import ChunkedLoss, linear_cross_entropy  # noqa: F401 - the sliced loss, re-exported

__all__ = ["ChunkedLoss", "FrozenInBf16", "PackingCollator", "TRAINABLE_TOKENS_PEFT", "drop_padding",
           "length_grouped_order", "linear_cross_entropy", "packing_collator", "speed_up_trainable_tokens",
           "supports_packing", "trainable_tokens_patch_problem", "without_right_padding_mask"]


_ORIGINAL_TRAINABLE_TOKENS_FORWARD = None
_TRAINABLE_TOKENS_WARNED = False
# The peft releases the replacement below was compared with (tests/test_bench.py); outside them peft runs unpatched.
TRAINABLE_TOKENS_PEFT = ">=0.21.2,<0.22"
# forward_adapters's parameters as peft 0.21 declares them: (name, kind).
_TRAINABLE_TOKENS_PARAMETERS = [("self", "POSITIONAL_OR_KEYWORD"), ("x", "POSITIONAL_OR_KEYWORD"),
                                ("active_adapters", "POSITIONAL_OR_KEYWORD"), ("args", "VAR_POSITIONAL"),
                                ("kwargs", "VAR_KEYWORD")]


def trainable_tokens_patch_problem(version: str | None = None, layer: type | None = None) -> str | None:
    """Why ``speed_up_trainable_tokens`` must leave this peft alone, in plain words; None when it may replace it.

    The replacement reaches into peft's ``TrainableTokensLayer`` (not a public API), so it is only applied
    to a peft inside ``TRAINABLE_TOKENS_PEFT`` whose ``forward_adapters`` still takes the same parameters and
    whose layer still has what the replacement reads. ``version`` and ``layer`` default to the installed ones.
    """
    import inspect
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    from packaging.specifiers import SpecifierSet

    try:
        version = version or installed_version("peft")
    except PackageNotFoundError:
        return "peft is not installed"
    if version not in SpecifierSet(TRAINABLE_TOKENS_PEFT):
        return (f"peft {version} is outside {TRAINABLE_TOKENS_PEFT}, the releases the faster trainable-token "
                f"rows were checked against")
    if layer is None:
        try:
            from peft.tuners.trainable_tokens.layer import TrainableTokensLayer as layer
        except ImportError:
            return f"peft {version} has no peft.tuners.trainable_tokens.layer.TrainableTokensLayer"
    method = getattr(layer, "forward_adapters", None)
    try:
        parameters = [(p.name, p.kind.name) for p in inspect.signature(method).parameters.values()]
    except (TypeError, ValueError):
        parameters = None
    if parameters != _TRAINABLE_TOKENS_PARAMETERS:
        return f"peft {version}'s TrainableTokensLayer.forward_adapters takes {parameters}, not the expected ones"
    if not callable(getattr(layer, "_get_embed_scale", None)):
        return f"peft {version}'s TrainableTokensLayer has no _get_embed_scale"
    return None


def speed_up_trainable_tokens() -> bool:
    """Make peft's ``trainable_token_indices`` layers compute only what the trained rows need (same numbers).

    peft (0.21) trains a few embedding rows by rebuilding the *whole* matrix every forward pass
    (``index_copy`` of 49,153 × 576 numbers) and, for SmolLM2's tied output layer, multiplying by that
    rebuilt matrix, so the backward pass computes a gradient for all 49,153 rows to keep one. Here the
    frozen matrix does the bulk and only the trained rows go through their own small product: the
    embedding looks the trained rows up separately; the output layer's logits for them are replaced by
    ``x · row``. Identical results (``tests/test_bench.py`` compares outputs and gradients); measured
    in the bench's speed ladder. Applied once per process, and only to the peft it was checked against
    (``trainable_tokens_patch_problem``): any other peft runs its own code, with one warning. Returns
    whether it is in place.
    """
    global _ORIGINAL_TRAINABLE_TOKENS_FORWARD, _TRAINABLE_TOKENS_WARNED
    if _ORIGINAL_TRAINABLE_TOKENS_FORWARD is not None:
        return True
    problem = trainable_tokens_patch_problem()
    if problem is not None:
        if not _TRAINABLE_TOKENS_WARNED:
            import warnings

            warnings.warn(f"{problem}: training uses peft's own (slower, same results) trainable-token rows",
                          RuntimeWarning, stacklevel=2)
            _TRAINABLE_TOKENS_WARNED = True
        return False
    import torch
    import torch.nn.functional as F
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    original = TrainableTokensLayer.forward_adapters

    def forward_adapters(self, x, active_adapters, *args, **kwargs):
        base = self.base_layer
        if (self.disable_adapters or self.merged or len(active_adapters or []) != 1 or args or kwargs
                or active_adapters[0] not in self.token_indices):
            return original(self, x, active_adapters, *args, **kwargs)
        adapter = active_adapters[0]
        delta = self.trainable_tokens_delta[adapter]
        index = torch.tensor(self.token_indices[adapter], device=base.weight.device)
        if isinstance(base, torch.nn.Embedding) and base.max_norm is None and self._get_embed_scale() is None:
            result = F.embedding(x, base.weight, padding_idx=base.padding_idx)
            matches = x.unsqueeze(-1) == index                    # (..., trained rows)
            hit = matches.any(-1, keepdim=True)
            trained = delta.to(result.dtype)[matches.long().argmax(-1)]
            return torch.where(hit, trained, result)
        if isinstance(base, torch.nn.Linear) and base.bias is None:
            result = F.linear(x, base.weight)
            trained = F.linear(x, delta.to(x.dtype))
            return result.index_copy(-1, index, trained.to(result.dtype))
        return original(self, x, active_adapters, *args, **kwargs)

    TrainableTokensLayer.forward_adapters = forward_adapters
    _ORIGINAL_TRAINABLE_TOKENS_FORWARD = original
    return True


class FrozenInBf16:
    """While active, the frozen float32 weights are stored in bfloat16; on exit the exact float32 ones return.

    Under bf16 autocast every matrix product converts its float32 weight to bfloat16 again at every step
    (autocast caches that only for weights that train). Converting the frozen ones once saves that work;
    the trainable LoRA weights stay float32. The float32 originals are kept aside, so the model the caller
    gets back computes exactly as before training, plus its adapter.
    """

    def __init__(self, model, enabled: bool = True):
        import torch

        self.kept = []
        if not enabled:
            return
        for parameter in model.parameters():
            if not parameter.requires_grad and parameter.dtype == torch.float32:
                self.kept.append((parameter, parameter.data))
                parameter.data = parameter.data.to(torch.bfloat16)

    def restore(self) -> None:
        for parameter, original in self.kept:
            parameter.data = original
        self.kept = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.restore()


def length_grouped_order(lengths: list[int], batch_size: int, seed: int) -> list[int]:
    """Indices that make every run of ``batch_size`` hold recipes of nearly one length, the batches in random order.

    Sort by length (ties broken at random), cut into batches, shuffle the full batches (seeded). Padding to a
    batch's longest recipe then costs almost nothing: measured on 128 Wikibooks recipes in batches of 4,
    4.2 % of the computed tokens, against 12.0 % with transformers' ``LengthGroupedSampler`` (which sorts
    only within groups of a few batches) and 23.6 % padding everything to 256.

        >>> length_grouped_order([5, 1, 4, 2], batch_size=2, seed=0)  # batches [1, 3] and [2, 0], shuffled
        [1, 3, 2, 0]
    """
    import random

    rng = random.Random(seed)
    ties = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], ties[index]))
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    short = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    rng.shuffle(batches)  # a short last batch stays last: the Trainer cuts batches from the start
    return [index for batch in batches + short for index in batch]


def drop_padding(tokenized):
    """Rows of token ids without their padding (``attention_mask`` 0), for padding-free batches."""
    def strip(batch):
        ids = [[token for token, keep in zip(row, mask) if keep]
               for row, mask in zip(batch["input_ids"], batch["attention_mask"])]
        return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}
    return tokenized.map(strip, batched=True, desc="Dropping padding")


def supports_packing(model) -> bool:
    """Whether this model keeps packed recipes apart: its attention mask is built from restarting position ids.

    transformers' ``masking_utils`` does that for SDPA and eager attention (``find_packed_sequence_indices``)
    when no attention mask is given; flash-attention uses the same position ids. Architectures built on it
    (Llama, GPT-2, ...) take ``position_ids`` in ``forward``.
    """
    import inspect

    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    try:
        takes_positions = "position_ids" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        takes_positions = False
    return takes_positions and (implementation in ("sdpa", "eager") or "flash" in implementation)


def without_right_padding_mask(batch: dict) -> dict:
    """The batch without its attention mask when every row's padding is on the right (ones, then zeros).

    In a causal model a token only looks left, so padding that comes *after* a recipe is never seen by it,
    and padding's own labels are -100: the mask changes nothing a real token computes, nor the loss
    (``tests/test_training.py`` compares). Without a mask, PyTorch's SDPA kernel runs its plain causal path,
    which skips the upper triangle: measured on the 2-core CPU for a batch of 4 × 751 tokens, 221 useful
    tokens/s instead of 185. A batch padded on the left keeps its mask.
    """
    mask = batch.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return batch
    if bool((mask[:, 1:] <= mask[:, :-1]).all()) and bool(mask[:, 0].all()):
        batch = dict(batch)
        del batch["attention_mask"]
    return batch


class PackingCollator:
    """Padding-free batches: transformers' ``DataCollatorWithFlattening``, plus ``use_cache=False``.

    ``DataCollatorWithFlattening`` lays a step's recipes end to end in one row of
    shape ``(1, total tokens)``, restarts ``position_ids`` at 0 for every recipe and
    labels every recipe's first token -100, so no recipe is asked to predict the
    next one's start. From the restarting positions transformers builds an
    attention mask that keeps each recipe to itself, but (as transformers 5.23 and 5.24
    do it in ``masking_utils``) only when there is no KV cache,
    and a model whose config says ``use_cache=True`` (SmolLM2's does) makes one even
    while training: the recipes would then silently attend to each other.
    Every batch therefore also says ``use_cache=False``. ``tests/test_bench.py``
    checks that a packed batch's loss equals each recipe's loss alone.
    """

    def __init__(self):
        from transformers import DataCollatorWithFlattening

        self.flatten = DataCollatorWithFlattening(return_tensors="pt")

    def __call__(self, features, return_tensors=None):
        features = [{"input_ids": list(feature["input_ids"])} for feature in features]
        batch = dict(self.flatten(features))
        batch["use_cache"] = False
        return batch


def packing_collator() -> PackingCollator:
    """The collator of padding-free batches (``PackingCollator``)."""
    return PackingCollator()
