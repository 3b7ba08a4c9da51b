"""The training loss without the vocabulary-wide logits: the output layer and cross-entropy, a slice at a time.

A causal language model ends with one matrix product per token against every
row of the vocabulary (49,153 for SmolLM2 with ``[END]``), then cross-entropy.
transformers computes all of it at once: for a batch of 4 recipes of 751 tokens
that is 3,004 × 49,153 logits, copied to float32 (590 MB), their log-softmax
(590 MB more), and as many numbers again going backward. On the 2-core CPU
those tensors are too big for any cache and are allocated afresh every step: in
a profile of one such step the log-softmax forward and backward took 13 % of
the time, and copying and zero-filling, much of it of these tensors, 15 % more.

Here the same numbers come out of a loop over slices of ``chunk`` tokens: a
slice's logits, their log-sum-exp, the loss, and at once the slice's gradient
(softmax minus the one-hot target), multiplied back through the output layer.
Only a (tokens × hidden) gradient is kept for the backward pass. This is the
"fused linear cross-entropy" that GPU libraries (Liger Kernel, Apple's Cut
Cross-Entropy) use to save memory; the matrix products are the same as before,
only the big temporary tensors are gone. ``tests/test_chunked_loss.py`` checks
loss and gradients against transformers' own loss. Measured on the 2-core CPU,
steps alternating with and without it: 4 × 751 tokens 9.6 s instead of 12.0 s,
4 × 201 tokens 2.1 s instead of 2.5 s, 4 × 101 tokens the same.

Used while training when the model is one whose forward is "decoder, output
layer, ``ForCausalLMLoss``" (Llama such as SmolLM2, GPT-2) and the output layer
is frozen; any other model keeps its own forward.
"""
from __future__ import annotations

from .constants import IGNORE_INDEX

FUSABLE_MODEL_TYPES = ("llama", "gpt2")  # their forward: decoder → lm_head → ForCausalLMLoss, nothing between
CPU_CHUNK_BYTES = 24 * 2**20     # one slice's float32 logits: under glibc's 32 MiB mmap ceiling, in the L3
GPU_CHUNK_BYTES = 256 * 2**20    # on a GPU, bigger slices: fewer, larger kernels (memory stays small)


def chunk_tokens(vocab_size: int, device_type: str = "cpu") -> int:
    """Tokens per slice, so that one slice's float32 logits take about ``CPU_CHUNK_BYTES`` (128 tokens for SmolLM2).

    On a CPU, below glibc's largest mmap threshold (32 MiB) a slice's memory is reused from
    one slice to the next instead of being handed back to the system and faulted in again;
    128 tokens also measured fastest of 64, 128, 256, 512 and 1024 on the 2-core CPU. On a GPU the
    slices are bigger (1,365 tokens for SmolLM2): there the point is memory, and a GPU wants
    large kernels (the GPU slice size is not measured).
    """
    budget = CPU_CHUNK_BYTES if device_type == "cpu" else GPU_CHUNK_BYTES
    return max(16, round(budget / (4 * max(1, vocab_size))))


def _linear_cross_entropy_function():
    import torch

    class LinearCrossEntropy(torch.autograd.Function):
        """Loss and gradients of ``cross_entropy(hidden @ weightᵀ, labels)``, slice by slice (see the module)."""

        @staticmethod
        def forward(ctx, hidden, rows_weight, weight, rows, labels, num_items, chunk, need_grad):
            # hidden (N, H); weight (V, H), frozen; rows_weight (k, H): trained replacements for weight[rows].
            # need_grad is decided by the caller: in here autograd is off, and needs_input_grad says True
            # even under torch.no_grad() (evaluation), which would do the gradient's work for nothing.
            with torch.autocast(hidden.device.type, enabled=False):
                has_rows = rows is not None and rows.numel() > 0
                rows_in_dtype = rows_weight.to(hidden.dtype) if has_rows else None
                row_correction = rows_in_dtype - weight[rows] if has_rows else None
                total = torch.zeros((), dtype=torch.float32, device=hidden.device)
                grad_hidden = torch.empty_like(hidden) if need_grad else None
                grad_rows = torch.zeros(rows_weight.shape, dtype=torch.float32, device=hidden.device) \
                    if need_grad and has_rows else None
                for start in range(0, hidden.shape[0], chunk):
                    piece, targets = hidden[start:start + chunk], labels[start:start + chunk]
                    logits = piece @ weight.t()
                    if has_rows:
                        logits[:, rows] = piece @ rows_in_dtype.t()
                    logits = logits.float()
                    counted = targets != IGNORE_INDEX
                    safe_targets = targets.clamp(min=0)
                    log_sum_exp = torch.logsumexp(logits, dim=-1)
                    target_logits = logits.gather(1, safe_targets[:, None]).squeeze(1)
                    total += ((log_sum_exp - target_logits) * counted).sum()
                    if not need_grad:
                        continue
                    # d loss / d logits = softmax − one-hot(target), for counted tokens, over num_items
                    grad_logits = logits.sub_(log_sum_exp[:, None]).exp_()
                    grad_logits[torch.arange(len(targets), device=hidden.device), safe_targets] -= 1.0
                    grad_logits.mul_((counted.float() / num_items)[:, None])
                    grad_logits = grad_logits.to(hidden.dtype)
                    grad_piece = grad_logits @ weight
                    if has_rows:
                        grad_piece += grad_logits[:, rows] @ row_correction
                        grad_rows += grad_logits[:, rows].t().float() @ piece.float()
                    grad_hidden[start:start + chunk] = grad_piece
            ctx.save_for_backward(grad_hidden, grad_rows)
            return total / num_items

        @staticmethod
        def backward(ctx, grad_loss):
            grad_hidden, grad_rows = ctx.saved_tensors
            return (grad_hidden * grad_loss.to(grad_hidden.dtype) if grad_hidden is not None else None,
                    grad_rows * grad_loss if grad_rows is not None else None,
                    None, None, None, None, None, None)

    return LinearCrossEntropy


_FUNCTION = None


def linear_cross_entropy(hidden, weight, labels, *, rows=None, rows_weight=None, num_items=None,
                         chunk: int | None = None):
    """``cross_entropy(hidden @ weight.T, labels)`` summed over counted tokens / ``num_items``, in slices.

    Args:
        hidden: (tokens, hidden size), the decoder's last hidden states; labels already shifted.
        weight: (vocabulary, hidden size), the output layer, frozen.
        labels: (tokens,), the next token of each, ``-100`` where not counted.
        rows, rows_weight: token ids whose output rows train (``[END]``) and their current values,
            which replace ``weight[rows]``.
        num_items: what the summed loss is divided by (the Trainer's ``num_items_in_batch``);
            default: the counted tokens, i.e. the mean.
        chunk: tokens per slice; default ``chunk_tokens(vocabulary, device)``.

    Example:
        >>> import torch
        >>> hidden, weight = torch.randn(5, 8), torch.randn(11, 8)
        >>> labels = torch.tensor([3, 1, -100, 7, 0])
        >>> expected = torch.nn.functional.cross_entropy(hidden @ weight.T, labels)
        >>> bool(torch.allclose(linear_cross_entropy(hidden, weight, labels, chunk=2), expected))
        True
    """
    import torch

    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _linear_cross_entropy_function()
    if num_items is None:
        num_items = (labels != IGNORE_INDEX).sum().clamp(min=1)
    num_items = torch.as_tensor(num_items, device=hidden.device, dtype=torch.float32)
    if rows is not None and rows_weight is None:
        raise ValueError("rows= needs rows_weight= (their trained values)")
    if rows_weight is None:
        rows_weight = torch.zeros(0, hidden.shape[-1], device=hidden.device)
    need_grad = torch.is_grad_enabled() and (hidden.requires_grad or rows_weight.requires_grad)
    return _FUNCTION.apply(hidden, rows_weight, weight, rows, labels, num_items,
                           chunk or chunk_tokens(weight.shape[0], hidden.device.type), need_grad)


def _output_layer(causal_lm):
    """``(weight, rows, rows_weight)`` of a frozen, bias-free output layer (with peft's trained rows), or None."""
    import torch

    head = causal_lm.get_output_embeddings()
    head = getattr(head, "token_adapter", head)   # peft's TrainableTokensWrapper holds the layer
    rows = rows_weight = None
    if not isinstance(head, torch.nn.Linear):
        try:
            from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
        except ImportError:
            return None
        active = list(getattr(head, "active_adapters", []) or [])
        if (not isinstance(head, TrainableTokensLayer) or head.disable_adapters or head.merged
                or len(active) != 1 or active[0] not in head.token_indices):
            return None
        rows = torch.tensor(head.token_indices[active[0]], device=head.base_layer.weight.device)
        rows_weight = head.trainable_tokens_delta[active[0]]
        head = head.base_layer
    if not isinstance(head, torch.nn.Linear) or head.bias is not None or head.weight.requires_grad:
        return None
    return head.weight, rows, rows_weight


class ChunkedLoss:
    """While active, the model computes its training loss with ``linear_cross_entropy`` (same numbers, less work).

    Replaces the forward of the causal-LM model inside ``model`` (a ``PeftModel`` or the plain model) for
    calls with ``labels``; calls without labels (generation) and models it does not know keep their own
    forward. ``active`` says whether it took over. On exit the model's own forward returns.

        with ChunkedLoss(lora_model) as chunked:
            trainer.train()          # chunked.active: True for SmolLM2
    """

    def __init__(self, model, enabled: bool = True):
        self.causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.active = False
        if not enabled or getattr(self.causal_lm.config, "model_type", None) not in FUSABLE_MODEL_TYPES:
            return
        decoder = getattr(self.causal_lm, getattr(self.causal_lm, "base_model_prefix", ""), None)
        if decoder is None or decoder is self.causal_lm or _output_layer(self.causal_lm) is None:
            return
        original = self.causal_lm.forward

        def forward(input_ids=None, attention_mask=None, labels=None, num_items_in_batch=None, **kwargs):
            # looked up per call: inside peft's disable_adapter() the trained rows must not be used
            output_layer = _output_layer(self.causal_lm)
            if labels is None or output_layer is None or kwargs.get("return_dict") is False:
                return original(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                                num_items_in_batch=num_items_in_batch, **kwargs)
            return self._forward(decoder, output_layer, input_ids, attention_mask, labels, num_items_in_batch,
                                 kwargs)

        self.causal_lm.forward = forward
        self.active = True

    @staticmethod
    def _forward(decoder, output_layer, input_ids, attention_mask, labels, num_items_in_batch, kwargs):
        import torch
        import torch.nn.functional as F
        from transformers.modeling_outputs import CausalLMOutputWithPast

        kwargs.pop("logits_to_keep", None)
        kwargs["use_cache"] = False
        outputs = decoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = outputs[0]
        weight, rows, rows_weight = output_layer
        device_type = hidden.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else weight.dtype
        shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1).to(hidden.device)
        loss = linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]).to(dtype), weight.to(dtype), shifted,
                                    rows=rows, rows_weight=rows_weight, num_items=num_items_in_batch)
        return CausalLMOutputWithPast(loss=loss, logits=None)

    def restore(self) -> None:
        if self.active:
            del self.causal_lm.forward   # the instance attribute goes; the class's forward shows again
            self.active = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.restore()
