"""A blind human evaluation: the learner rates pairs of generations, base vs fine-tuned, without knowing which is which.

* ``blind_pairs``: the pairs of one stage 5 evaluation (its side-by-side prompts and its BLEU/ROUGE
  prompts), each with an id that names exactly these two texts.
* ``finetuned_label``: "A" or "B", from a seed made of the pair's id: random-looking (blind) yet the same
  on every reload and every machine (reproducible).
* ``save_rating`` / ``saved_ratings``: one rating per pair in the store (``results`` stage5/blind_ratings),
  saved at once; rating a pair again replaces its rating.
* ``win_rate``: the fine-tuned model's share of wins, a tie counted as half a win.

The Class page reads the same ``saved_ratings`` from each learner's store and pools them.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from .store import Store

RATINGS_KEY = ("stage5", "blind_ratings")  # where ``Store.put_result`` keeps the learner's ratings
CHOICES = ("A", "B", "tie")
WINNERS = ("finetuned", "base", "tie")


@dataclass(frozen=True)
class BlindPair:
    """Two continuations of one prompt; ``base`` and ``finetuned`` are hidden behind ``a`` and ``b`` on the page."""
    pair_id: str
    run: str
    prompt: str
    base: str
    finetuned: str

    @property
    def finetuned_is(self) -> str:
        return finetuned_label(self.pair_id)

    @property
    def a(self) -> str:
        return self.finetuned if self.finetuned_is == "A" else self.base

    @property
    def b(self) -> str:
        return self.base if self.finetuned_is == "A" else self.finetuned


def pair_id(run: str, prompt: str, base: str, finetuned: str) -> str:
    """A short id of these two texts for this prompt: a new evaluation's new texts are new pairs."""
    digest = hashlib.sha256("\x00".join((run, prompt, base, finetuned)).encode()).hexdigest()
    return digest[:16]


def finetuned_label(pair: str) -> str:
    """Which letter the fine-tuned text gets in pair ``pair``: a coin flip seeded by the id (never Python's ``hash``,
    which changes between processes)."""
    return "A" if random.Random(int(pair, 16)).random() < 0.5 else "B"


def blind_pairs(result: dict | None) -> list[BlindPair]:
    """The pairs of a stage 5 evaluation result: its side-by-side comparisons, then its BLEU/ROUGE generations.

    Two identical texts make no pair (there is nothing to prefer); a prompt seen twice is kept once.
    """
    if not result:
        return []
    run = str(result.get("run", ""))
    candidates = [(c["prompt"], _text(c, "base"), _text(c, "finetuned")) for c in result.get("comparisons") or []]
    candidates += [(p["prompt"], p["base"], p["finetuned"]) for p in (result.get("overlap") or {}).get("pairs", [])]
    pairs, seen = [], set()
    for prompt, base, finetuned in candidates:
        if prompt in seen or base.strip() == finetuned.strip():
            continue
        seen.add(prompt)
        pairs.append(BlindPair(pair_id(run, prompt, base, finetuned), run, prompt, base, finetuned))
    return pairs


def _text(comparison: dict, side: str) -> str:
    value = comparison.get(side)
    return value if isinstance(value, str) else str(comparison.get(f"{side}_text", ""))


def winner_of(pair: BlindPair, choice: str) -> str:
    """"finetuned", "base" or "tie" for the learner's ``choice`` ("A", "B" or "tie") on ``pair``."""
    if choice not in CHOICES:
        raise ValueError(f"a rating is one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "tie":
        return "tie"
    return "finetuned" if choice == pair.finetuned_is else "base"


def saved_ratings(store: Store) -> dict[str, dict]:
    """The learner's ratings: pair id → ``{"choice", "winner", "finetuned_is", "run", "prompt"}``."""
    ratings = store.result(*RATINGS_KEY)
    return ratings if isinstance(ratings, dict) else {}


def save_rating(store: Store, pair: BlindPair, choice: str) -> dict:
    """Keep the learner's ``choice`` on ``pair`` at once (replacing an earlier rating of it); return it."""
    rating = {"choice": choice, "winner": winner_of(pair, choice), "finetuned_is": pair.finetuned_is,
              "run": pair.run, "prompt": pair.prompt}
    store.put_result(*RATINGS_KEY, {**saved_ratings(store), pair.pair_id: rating})
    return rating


def win_rate(ratings: list[dict] | dict[str, dict]) -> dict:
    """The fine-tuned model's win rate over ``ratings``: (wins + ties / 2) / ratings; None with no rating.

    >>> win_rate([{"winner": "finetuned"}, {"winner": "tie"}, {"winner": "base"}, {"winner": "finetuned"}])
    {'finetuned': 2, 'base': 1, 'tie': 1, 'ratings': 4, 'win_rate': 0.625}
    """
    rows = list(ratings.values()) if isinstance(ratings, dict) else list(ratings)
    counts = {winner: sum(row.get("winner") == winner for row in rows) for winner in WINNERS}
    total = sum(counts.values())
    rate = (counts["finetuned"] + counts["tie"] / 2) / total if total else None
    return {**counts, "ratings": total, "win_rate": rate}
