"""Rows for the stage results' charts and tables, from what the lesson functions return.

The lesson functions "show their work" as dicts (``data_mess_report``,
``backward_and_inspect``, ``token_length_stats`` ...); these helpers turn them
into the flat rows Altair and ``st.dataframe`` take. No Streamlit here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dashboard.logic.charts import readable_token
from lessons.engine.paths import relative_to_project
from lessons.engine.store import Store

MARKUP_HINTS = re.compile(r"<ref|<[a-z]+|''|\[\[|&[a-z#0-9]+;", re.IGNORECASE)


# -- captions ---------------------------------------------------------------------------------
SETTING_WORDS = {"temperature": "temperature", "top_p": "top-p", "max_new_tokens": "new tokens at most",
                 "seed": "seed"}


def model_label(model: str | None) -> str:
    """A model as a caption names it: a hub id as it is, a local folder by its place in the project or its name."""
    if not model:
        return "base model"
    if Path(str(model)).is_absolute():
        shown = relative_to_project(model)
        return shown if not Path(shown).is_absolute() else Path(str(model)).name
    return str(model)


def settings_text(settings: dict | None) -> str:
    """Generation settings in words: ``temperature 0 (greedy) · top-p 1 · 60 new tokens at most · seed 0``."""
    parts = []
    for key, value in (settings or {}).items():
        value = f"{value:g}" if isinstance(value, float) else str(value)
        if key == "max_new_tokens":
            parts.append(f"{value} new tokens at most")
        elif key == "temperature" and value == "0":
            parts.append("temperature 0 (greedy)")
        else:
            parts.append(f"{SETTING_WORDS.get(key, key.replace('_', ' '))} {value}")
    return " · ".join(parts)


# -- stage 2 ---------------------------------------------------------------------------------
def mess_rows(report: dict) -> list[dict]:
    """How many raw recipes carry each kind of markup."""
    return [{"kind of mess": kind, "recipes": count} for kind, count in (report.get("markup") or {}).items()]


def removal_rows(report: dict) -> list[dict]:
    """How many recipes fail each rule, the ones that fail none left out (a recipe may fail two rules)."""
    return [{"rule failed": rule, "recipes": count} for rule, count in (report.get("removed") or {}).items() if count]


def field_rows(report: dict) -> list[dict]:
    """Per field: the Python types seen, missing and empty counts, and length after cleaning."""
    rows = []
    for name, info in (report.get("fields") or {}).items():
        lengths = info.get("length_after_cleaning") or {}
        rows.append({"field": name, "types": ", ".join(f"{t} × {n}" for t, n in info.get("types", {}).items()),
                     "missing": info.get("missing", 0), "empty": info.get("empty", 0),
                     "median length (clean)": lengths.get("median")})
    return rows


def messy_example(recipes: list[dict]) -> int:
    """The index of the first recipe whose raw fields show markup (a good before/after example), else 0."""
    for index, recipe in enumerate(recipes):
        raw = " ".join(str(recipe.get(key, "")) for key in ("title", "ingredients", "directions"))
        if MARKUP_HINTS.search(raw):
            return index
    return 0


def split_overlap(splits) -> list[str]:
    """Titles that sit in both train and validation (a leak): should be empty."""
    train = {str(title).casefold() for title in splits["train"]["title"]} if "title" in splits["train"].column_names \
        else set()
    validation = {str(title).casefold() for title in splits["validation"]["title"]} \
        if "title" in splits["validation"].column_names else set()
    return sorted(train & validation)


# -- stage 3 ---------------------------------------------------------------------------------
def length_summary_rows(stats: dict) -> list[dict]:
    """The scalar numbers of a token-length report as (measure, value) rows."""
    return [{"measure": key.replace("_", " "), "value": value} for key, value in stats.items()
            if isinstance(value, (int, float, str)) and not isinstance(value, bool)]


# -- stage 4A --------------------------------------------------------------------------------
def gradient_rows(report: dict) -> list[dict]:
    """Gradient norms by layer, in model order, with a short label (``layers.3`` for ``model.layers.3``)."""
    rows = []
    for order, layer in enumerate(report.get("layers") or []):
        name = str(layer["name"])
        short = name.replace("model.", "", 1) if name.startswith("model.") else name
        rows.append({"order": order, "layer": short, "gradient norm": float(layer["grad_norm"])})
    return rows


def surprise_rows(tokens: list[str], surprise: list[float]) -> list[dict]:
    """One row per predicted token of one recipe: its text and the model's surprise (-log p) at it."""
    return [{"position": i, "token": token, "surprise": float(value)}
            for i, (token, value) in enumerate(zip(tokens, surprise))]


NOT_MEASURED = "not measured"


def shown(value: float | None, spec: str) -> str:
    """A number of the step's report as the page writes it; None (the report did not measure it) says so.

    ``shown(0.01234, ".4f")`` → ``"0.0123"``; ``shown(None, ".4f")`` → ``"not measured"``.
    """
    return NOT_MEASURED if value is None else format(value, spec)


def change(before: float | None, after: float | None) -> str | None:
    """``after - before`` as a signed delta (``"-0.0500"``), or no delta when either was not measured."""
    return None if before is None or after is None else f"{after - before:+.4f}"


# -- stage 4B --------------------------------------------------------------------------------
def lora_share(trainable: int, total: int) -> str:
    """``"1.2 % (1,634,304 of 134,515,008)"``."""
    return f"{100 * trainable / total:.2f} % ({trainable:,} of {total:,})" if total else "–"


def format_eta(seconds: float | None) -> str:
    """``"4 min 05 s"``; ``"–"`` when unknown."""
    if seconds is None:
        return "–"
    seconds = int(round(max(0.0, float(seconds))))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def run_rows(runs: list[dict]) -> list[dict]:
    """A table of training runs: settings that vary between experiments, status and final losses."""
    rows = []
    for run in runs:
        config: dict[str, Any] = run.get("config") or {}
        summary: dict[str, Any] = run.get("summary") or {}
        rows.append({"run": run["id"], "status": run["status"], "epochs": config.get("epochs"),
                     "max steps": config.get("max_steps"), "rank": config.get("rank"),
                     "alpha": config.get("alpha"), "recipes": config.get("n_recipes"),
                     "learning rate": config.get("learning_rate"),
                     "final train loss": summary.get("final_train_loss", summary.get("train_loss")),
                     "final validation loss": summary.get("final_eval_loss", summary.get("eval_loss")),
                     "reason": run.get("reason", "")})
    return rows


def history_loss_rows(runs: list[dict], metrics: dict[str, list[dict]]) -> list[dict]:
    """Every run's losses for one chart: ``{"run", "step", "loss", "split"}``, the run named by its settings.

    Args:
        runs: training runs (``store.runs("train")``).
        metrics: each run's metrics by run id (``store.metrics(id)``); a run missing here has none.
    """
    rows = []
    for run in runs:
        config = run.get("config") or {}
        name = f"{run['id'][-6:]} r={config.get('rank')} ep={config.get('epochs')} n={config.get('n_recipes')}"
        rows += [{"run": name, "step": m["step"], "loss": m["loss"],
                  "split": "validation" if m["split"] in ("eval", "validation") else m["split"]}
                 for m in metrics.get(run["id"], []) if m.get("loss") is not None]
    return rows


# -- stage 6 ---------------------------------------------------------------------------------
def distribution_rows(rows: list[dict]) -> list[dict]:
    """``next_token_distribution`` rows as chart rows: one bar before and one after per token, readable text."""
    out = []
    for row in rows:
        token = f"{readable_token(str(row.get('text', row.get('id'))), str(row.get('token') or ''))} ({row['id']})"
        out.append({"token": token, "probability": float(row["before"]), "as": "the model's own"})
        out.append({"token": token, "probability": float(row["after"]), "as": "after temperature and top-p"})
    return out


COUNTED_MEASURES = ("memorised titles",)  # stage 5's measures that count texts; the others are shares of 0 to 1


def beyond_perplexity(measures: dict[str, dict[str, float]]) -> dict:
    """Stage 5's measures beyond perplexity, split for drawing: shares in percent (one chart), counts apart.

    ``measures`` is ``{"base": {name: value}, "finetuned": {...}}`` as the evaluation saves it. Returns
    ``{"shares": [{"measure", "model", "percent"}], "counts": [{"measure", "model", "texts"}], "all_zero": bool}``;
    ``all_zero`` says every share is 0 %, which a chart would only show as nothing.
    """
    names = {"base": "base", "finetuned": "fine-tuned"}
    shares, counts = [], []
    for side, values in measures.items():
        for name, value in values.items():
            if name in COUNTED_MEASURES:
                counts.append({"measure": name, "model": names.get(side, side), "texts": int(value)})
            else:
                shares.append({"measure": name, "model": names.get(side, side), "percent": round(100 * value, 1)})
    return {"shares": shares, "counts": counts, "all_zero": all(row["percent"] == 0 for row in shares)}


def stop_note(comparison: dict, side: str) -> str:
    """" — stopped at [END]", or how many new tokens it wrote without stopping (a budget, not "never")."""
    if comparison.get(f"{side}_stopped"):
        return " — stopped at [END]"
    tokens = comparison.get(f"{side}_tokens")
    return f" — no [END] in {tokens} new tokens" if tokens else " — no [END]"


def newest_evaluation(store: Store) -> dict | None:
    runs = store.runs("evaluate")
    return runs[-1] if runs else None
