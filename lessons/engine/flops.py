"""How much arithmetic LoRA training does, and what share of the hardware's peak that is.

A training step's work is nearly all matrix products. Per token, a weight matrix
with ``n`` numbers costs ``2n`` floating-point operations forward; backward, a
*frozen* matrix only passes the gradient on to its input (``2n`` more), while a
trained one also needs its own gradient (``2n`` more again). Attention adds
products that grow with the length of the text: for a token at position ``i``,
``4 × i × width`` forward per layer (queries against keys, weights against
values), three times that with the backward pass. These are the *model* FLOPs:
what the mathematics needs, not what a kernel happens to recompute, and only
real tokens count, never padding. Divided by the time spent, and by the
device's peak, they give the "model FLOPs utilisation" that GPU papers report.
"""
from __future__ import annotations

import os

# Dense bfloat16 tensor-core peaks (half the "with sparsity" figure) from NVIDIA's data sheets, in TFLOP/s. The
# first name found in torch.cuda.get_device_name() wins, so the more specific names come first; NVL variants have
# other peaks and are not in the table (None: unknown).
PEAK_BF16_TFLOPS = (("NVL", None), ("H100 PCIe", 756.5), ("H100", 989.4), ("H200", 989.4), ("A100", 312.0),
                    ("L4", 121.0))
PEAK_ENV = "LAB_PEAK_TFLOPS"  # set it to a device's peak when the table does not know the device


def matrix_parameters(model) -> dict[str, int]:
    """``{"frozen": n, "trained": n}``: the numbers in the model's weight matrices that every token multiplies.

    Embedding lookups cost no multiplication and are left out; the output layer counts,
    even when it shares its matrix with the embeddings.

        >>> import torch
        >>> matrix_parameters(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)))
        {'frozen': 0, 'trained': 18}
    """
    import torch

    counts = {"frozen": 0, "trained": 0}
    for module in model.modules():
        if list(module.children()) or isinstance(module, torch.nn.Embedding):
            continue  # wrappers (peft's layers) hold the real matrices as children; lookups multiply nothing
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            counts["trained" if weight.requires_grad else "frozen"] += weight.numel()
    return counts


def _layers_and_width(config) -> tuple[int, int]:
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0)
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if heads else 0)
    return int(layers), int(heads * head_dim)


def training_flops(model, lengths: list[int]) -> float:
    """Model FLOPs of one training pass over recipes of these lengths (real tokens only).

    ``4 × frozen + 6 × trained`` matrix numbers per token, plus attention's
    ``12 × layers × width × i`` for the token at position ``i`` (causal: it looks at ``i`` positions).
    """
    counts = matrix_parameters(model)
    layers, width = _layers_and_width(model.config)
    per_token = 4 * counts["frozen"] + 6 * counts["trained"]
    attended = sum(length * (length + 1) / 2 for length in lengths)
    return per_token * sum(lengths) + 12 * layers * width * attended


def peak_flops(device_name: str | None = None) -> float | None:
    """The device's dense bf16 peak in FLOP/s: ``$LAB_PEAK_TFLOPS``, else NVIDIA's data sheet; None if unknown.

        >>> peak_flops("NVIDIA H100 80GB HBM3") / 1e12
        989.4
        >>> peak_flops("cpu") is None
        True
    """
    override = os.environ.get(PEAK_ENV)
    if override:
        return float(override) * 1e12
    if device_name is None:
        import torch

        device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    for name, tflops in PEAK_BF16_TFLOPS:
        if name in device_name:
            return tflops * 1e12 if tflops else None
    return None
