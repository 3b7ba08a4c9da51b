"""Measures beyond perplexity that need no judge: word overlap with held-out recipes (BLEU, ROUGE) and latency.

* ``heldout_prompt``: a held-out recipe cut into its start (``"RECIPE: title\\n"``, the prompt) and the rest
  (the reference the model's continuation is compared with).
* ``overlap_scores``: sacrebleu's corpus BLEU and rouge-score's ROUGE-1/2/L F1 (stemmed) of generations
  against their references, per pair and over all of them.
* ``latency``: time to the first new token and milliseconds per token after it, the median of a few timed
  generations after one warm-up that is not counted.

The stage 5 evaluation job (``lessons.engine.evaluation``) runs them on the base and the fine-tuned model
with ``BeyondSettings``; the stage 5 page, the lab report and the Class page draw what it saved.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

from .constants import END_MARKER

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass
class BeyondSettings:
    """How much of the beyond-perplexity measures the evaluation job runs."""
    overlap_recipes: int = field(default=4, metadata={"help": "held-out recipes each model continues for BLEU/ROUGE"})
    latency_new_tokens: int = field(default=32, metadata={"help": "new tokens per timed generation (exactly so many)"})
    latency_runs: int = field(default=3, metadata={"help": "timed generations per model after one uncounted warm-up"})

    @classmethod
    def for_device(cls, cuda: bool) -> "BeyondSettings":
        """Small sizes for a 2-core CPU (minutes), real sizes for a CUDA GPU."""
        return cls(overlap_recipes=40, latency_new_tokens=128, latency_runs=10) if cuda else cls()

    def as_dict(self) -> dict:
        return asdict(self)


def heldout_prompt(recipe_text: str) -> tuple[str, str]:
    """``(prompt, reference)`` of a formatted recipe: its first line with its newline, and the rest without [END].

    >>> heldout_prompt("RECIPE: Soup\\nINGREDIENTS: water\\nDIRECTIONS: boil\\n[END]")
    ('RECIPE: Soup\\n', 'INGREDIENTS: water\\nDIRECTIONS: boil')
    """
    first, newline, rest = recipe_text.partition("\n")
    if not newline or not rest.strip():
        raise ValueError(f"a held-out recipe needs a title line and a body after it, got {recipe_text[:60]!r}")
    return first + newline, without_end(rest)


def without_end(text: str) -> str:
    """The text before its first ``[END]``, stripped: what BLEU and ROUGE compare (the marker is not a word)."""
    return text.split(END_MARKER, 1)[0].strip()


def overlap_scores(hypotheses: list[str], references: list[str]) -> dict:
    """BLEU (0-100, sacrebleu's ``corpus_bleu``) and ROUGE-1/2/L F1 (0-1, stemmed, the mean over pairs).

    Returns ``{"bleu", "rouge1", "rouge2", "rougeL", "per_pair": [{"bleu", "rouge1", "rouge2", "rougeL"}]}``
    (a pair's BLEU is sacrebleu's ``sentence_bleu``). An identical text scores 100 and 1.0; unrelated text near 0.
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} generations but {len(references)} references: one reference each")
    if not hypotheses:
        raise ValueError("no generations to score: BLEU and ROUGE need at least one pair")
    hypotheses, references = [without_end(h) for h in hypotheses], [without_end(r) for r in references]
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per_pair = []
    for hypothesis, reference in zip(hypotheses, references):
        rouge = scorer.score(reference, hypothesis)  # (target, prediction)
        per_pair.append({"bleu": sacrebleu.sentence_bleu(hypothesis, [reference]).score,
                         **{kind: rouge[kind].fmeasure for kind in ROUGE_TYPES}})
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            **{kind: statistics.fmean(pair[kind] for pair in per_pair) for kind in ROUGE_TYPES},
            "per_pair": per_pair}


class _TokenClock:
    """A generation streamer that notes when each new token arrives (``generate`` first hands it the prompt)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        int(value.reshape(-1)[-1])  # reading a value waits for the GPU: the time is the token's, not its launch
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.arrivals.append(time.perf_counter())

    def end(self) -> None:
        pass


def latency(model, tokenizer, prompt: str, *, new_tokens: int = 32, runs: int = 3) -> dict:
    """Time to first token and ms per token of greedy generation from ``prompt``, exactly ``new_tokens`` each.

    One warm-up generation first (not counted: it pays for first-call set-up), then ``runs`` timed ones;
    the figures are their medians. ``ms_per_token`` is the time after the first token divided by the tokens
    after it (decoding speed); ``ttft_ms`` includes reading the whole prompt.

    Returns ``{"ttft_ms", "ms_per_token", "total_ms", "new_tokens", "runs", "device", "samples": [...]}``.
    """
    return latency_side_by_side({"model": model}, tokenizer, prompt, new_tokens=new_tokens, runs=runs)["model"]


def latency_side_by_side(models: dict, tokenizer, prompt: str, *, new_tokens: int = 32, runs: int = 3) -> dict:
    """``latency`` of each of ``models`` (name → model), their timed runs interleaved (A B, B A, A B …).

    Interleaving makes the comparison fair on a machine whose load changes while it measures: a slower
    minute slows every model alike instead of the one timed last. Returns ``{name: latency's dict}``.
    """
    import torch

    if new_tokens < 2 or runs < 1:
        raise ValueError(f"latency needs at least 2 new tokens and 1 run, got {new_tokens} tokens, {runs} runs")
    samples: dict[str, list[dict]] = {name: [] for name in models}
    was_training = {name: model.training for name, model in models.items()}
    order = list(models)
    try:
        for model in models.values():
            model.eval()
        for attempt in range(runs + 1):
            for name in (order if attempt % 2 == 0 else order[::-1]):
                timed = _timed_generation(models[name], tokenizer, prompt, new_tokens, torch)
                if attempt:  # attempt 0 is each model's warm-up
                    samples[name].append(timed)
    finally:
        for name, model in models.items():
            model.train(was_training[name])
    return {name: {**{key: statistics.median(s[key] for s in samples[name])
                      for key in ("ttft_ms", "ms_per_token", "total_ms")},
                   "new_tokens": new_tokens, "runs": runs, "device": str(next(models[name].parameters()).device),
                   "samples": samples[name]}
            for name in models}


def _timed_generation(model, tokenizer, prompt: str, new_tokens: int, torch) -> dict:
    """One greedy generation of exactly ``new_tokens`` tokens, with when its first and last token arrived."""
    inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    clock = _TokenClock()
    started = time.perf_counter()
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tokenizer.pad_token_id, streamer=clock)
    first, last = clock.arrivals[0], clock.arrivals[-1]
    return {"ttft_ms": 1000 * (first - started), "total_ms": 1000 * (last - started),
            "ms_per_token": 1000 * (last - first) / max(1, len(clock.arrivals) - 1), "new_tokens": len(clock.arrivals)}
