"""What the stage 5 page, the lab report and the Class page draw of the measures beyond perplexity.

Word overlap (BLEU, ROUGE) and latency come from the stage 5 evaluation's result
(``lessons.engine.evaluation``); the blind ratings from ``lessons.engine.blind_rating``.
"""
from __future__ import annotations

from lessons.engine.blind_rating import WINNERS

MODEL_NAMES = {"base": "base", "finetuned": "fine-tuned"}
OVERLAP_MEASURES = {"bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}
LATENCY_MEASURES = {"ttft_ms": "time to first token (ms)", "ms_per_token": "ms per token after the first"}
WINNER_NAMES = {"finetuned": "fine-tuned better", "tie": "tie", "base": "base better"}

OVERLAP_TEXT = """\
**BLEU** and **ROUGE** count the words and word sequences a generated recipe shares with the real
recipe that was held out under the same title. BLEU (0–100) asks how much of what the model wrote appears in
the real recipe (precision of 1- to 4-word sequences, with a penalty for being short); ROUGE-1 and ROUGE-2 ask
about single words and word pairs, ROUGE-L about the longest sequence in common (drawn here × 100, on one scale
with BLEU).

What they *can* say: whether fine-tuning moved the model towards the words and the shape of real recipes
("INGREDIENTS:", "cup", "stir until") — the fine-tuned model should score higher than the base one.
What they *cannot* say: there are many good recipes for one title, and only one is the reference, so a correct
recipe in other words scores low; a fluent copy of a training recipe scores high; and no count of words knows
whether the food would work (five cups of salt shares as many words as five cups of flour). Read them as
"sounds like the held-out recipe", never as "is a good recipe" — that needs a person: the blind evaluation below.
"""

LATENCY_TEXT = """\
**Latency** is how long a person waits. *Time to first token* covers reading the whole prompt and producing the
first new token; *ms per token* is the pace after it. Both models write the same number of tokens from the same
prompt, greedily; each figure is the median of a few runs after one warm-up that is not counted (the first call
pays for set-up). The fine-tuned model here is the base model plus LoRA's small matrices, computed beside each
adapted layer: a little extra work per token, which merging the adapter into the weights (`merge_and_unload`)
would remove. Whether that extra work shows depends on the machine: compare the two bars. On a busy shared machine
the figures move from run to run; only the two models measured in the same run compare.
"""

BLIND_TEXT = """\
Which continuation is the better recipe? Each pair below is the base and the fine-tuned model continuing the same
prompt, shown as **A** and **B** in an order shuffled for each pair: the model is hidden until you rate. Judge as a
cook would: does it read as a recipe, does it stop, would it work? Each rating is saved at once; press another
button to change it. Once rated, the pair tells which was which.
"""


def overlap_rows(result: dict | None) -> list[dict]:
    """One row per model and measure, BLEU as it is (0–100) and ROUGE × 100: ``{"measure", "model", "score"}``."""
    overlap = (result or {}).get("overlap") or {}
    rows = []
    for side, model in MODEL_NAMES.items():
        for key, measure in OVERLAP_MEASURES.items():
            value = (overlap.get(side) or {}).get(key)
            if value is not None:
                rows.append({"measure": measure, "model": model,
                             "score": round(float(value) * (1 if key == "bleu" else 100), 2)})
    return rows


def latency_rows(result: dict | None) -> list[dict]:
    """One row per model and latency figure: ``{"measure", "model", "ms"}``."""
    timing = (result or {}).get("latency") or {}
    return [{"measure": measure, "model": model, "ms": round(float(timing[side][key]), 2)}
            for side, model in MODEL_NAMES.items() if side in timing
            for key, measure in LATENCY_MEASURES.items() if timing[side].get(key) is not None]


def latency_caption(result: dict | None) -> str:
    """How the latency was measured: tokens, runs and device, from what the job saved."""
    timing = (result or {}).get("latency") or {}
    if not timing:
        return ""
    first = next(iter(timing.values()))
    return (f"{first['new_tokens']} new tokens per generation, median of {first['runs']} timed runs after one "
            f"warm-up, on {first['device']}.")


def win_rate_rows(stats: dict) -> list[dict]:
    """``win_rate``'s counts as bars: ``{"outcome", "ratings"}``, fine-tuned wins first."""
    return [{"outcome": WINNER_NAMES[winner], "ratings": int(stats[winner])} for winner in WINNERS]


def win_rate_sentence(stats: dict) -> str:
    """The fine-tuned model's win rate in words (a tie counted as half a win)."""
    if not stats["ratings"]:
        return "No pair rated yet."
    return (f"The fine-tuned model won {stats['finetuned']}, lost {stats['base']} and tied {stats['tie']} of "
            f"{stats['ratings']} rated pairs: a win rate of {100 * stats['win_rate']:.0f} % (a tie counts as half a "
            "win; 50 % means you could not tell them apart).")
