"""Full fine-tuning vs LoRA (vs QLoRA), stage 4B: the same settings trained each way, side by side.

``start_comparison`` queues one training job per method (``lessons.engine.jobs.start_job``) and remembers
which runs belong together in the store (``results``, stage 4B, ``COMPARE_KEY``). ``comparison_rows`` reads
their figures from the runs' summaries (``lessons.engine.methods`` measures them the same way for every
method), ``table_rows`` and ``comparison_chart`` draw them, and ``conclusion`` says in a sentence what the
learner's own numbers show. ``saved_gpu_qlora`` finds a QLoRA run from a GPU, for a machine that cannot run one.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import altair as alt
import pandas as pd

from lessons.engine import jobs
from lessons.engine.methods import METHODS, qlora_unsupported_reason
from lessons.engine.store import Store

COMPARE_KEY = "method_compare"  # store.result("stage4b", COMPARE_KEY) = {"runs": {method: run_id}}
LABELS = {"lora": "LoRA", "full": "full fine-tuning", "qlora": "QLoRA"}
# The chart's measures: (row key, title with its unit); what each bar means is in the table beside it.
MEASURES = [("trainable_percent", "trainable weights (%)"), ("peak_memory_mb", "peak memory (MB)"),
            ("tokens_per_s", "tokens / s"), ("heldout_perplexity", "held-out perplexity"),
            ("stop_rate", "stop rate"), ("saved_mb", "saved (MB)")]


COMPARE_STOP_PROMPTS = 4  # held-out titles each compared run writes from, for its stop rate


def methods_here() -> tuple[list[str], str | None]:
    """The methods this machine can train, and why QLoRA is left out (None when it is not)."""
    reason = qlora_unsupported_reason()
    return [method for method in METHODS if method != "qlora" or reason is None], reason


def start_comparison(settings, *, reference: bool, store: Store, methods: list[str]) -> dict[str, str]:
    """Queue ``settings`` once per method (each keeps its own learning rate: ``full_learning_rate`` for full);
    return ``{method: run_id}``, also kept in the store as the comparison to show."""
    if not methods:
        raise ValueError("Choose at least one method to compare.")
    # The stop rate is measured at the end of each compared run; an ordinary run leaves it to stage 5 (it costs
    # minutes of generation on a CPU).
    stop_prompts = settings.stop_rate_prompts or COMPARE_STOP_PROMPTS
    runs = {method: jobs.start_job(replace(settings, method=method, stop_rate_prompts=stop_prompts),
                                   reference=reference, store=store,
                                   name=f"compare: {LABELS.get(method, method)}")
            for method in methods}
    store.put_result("stage4b", COMPARE_KEY, {"runs": runs})
    return runs


def _mb(value: Any) -> float | None:
    return float(value) / 1e6 if isinstance(value, (int, float)) else None


def row_from_run(method: str, run: dict) -> dict:
    """One method's figures from its run (``None`` where the run has not measured them yet)."""
    summary = run.get("summary") or {}
    trainable = summary.get("trainable") or {}
    return {"method": method, "label": LABELS.get(method, method), "run": run["id"], "status": run["status"],
            "learning_rate": summary.get("learning_rate"), "trainable": trainable.get("trainable"),
            "trainable_percent": trainable.get("percent"), "peak_memory_mb": summary.get("peak_memory_mb"),
            "memory_kind": summary.get("memory_kind"), "tokens_per_s": summary.get("tokens_per_s"),
            "heldout_perplexity": summary.get("heldout_perplexity"), "stop_rate": summary.get("stop_rate"),
            "saved_mb": _mb(summary.get("saved_bytes")), "device": summary.get("device"),
            "footprint_float32_mb": _mb(summary.get("footprint_float32_bytes")),
            "footprint_4bit_mb": _mb(summary.get("footprint_4bit_bytes"))}


def comparison_rows(store: Store) -> list[dict]:
    """The newest comparison's runs, one row per method, in the order they were queued; [] before the first."""
    started = store.result("stage4b", COMPARE_KEY) or {}
    rows = []
    for method, run_id in (started.get("runs") or {}).items():
        run = store.run(run_id)
        if run is not None:
            rows.append(row_from_run(method, run))
    return rows


def saved_gpu_qlora(store: Store) -> dict | None:
    """The newest finished QLoRA run trained on a GPU, as a row, or None."""
    for run in reversed(store.runs("train")):
        summary = run.get("summary") or {}
        if ((run.get("config") or {}).get("method") == "qlora" and run["status"] == "finished"
                and str(summary.get("device", "")).startswith("cuda")):
            return row_from_run("qlora", run)
    return None


def _fmt(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "–"


def table_rows(rows: list[dict]) -> list[dict]:
    """The rows as a table for a person: one column per figure, with units."""
    return [{"method": row["label"], "status": row["status"], "learning rate": _fmt(row["learning_rate"], "{:g}"),
             "trainable": _fmt(row["trainable"], "{:,}"), "trainable %": _fmt(row["trainable_percent"], "{:.2f}"),
             "peak memory (MB)": _fmt(row["peak_memory_mb"], "{:,.0f}"),
             "tokens/s": _fmt(row["tokens_per_s"], "{:,.0f}"),
             "held-out perplexity": _fmt(row["heldout_perplexity"], "{:.2f}"),
             "stop rate": _fmt(row["stop_rate"], "{:.0%}"), "saved (MB)": _fmt(row["saved_mb"], "{:,.1f}"),
             "model in memory (MB)": (f"{row['footprint_float32_mb']:,.1f} → {row['footprint_4bit_mb']:,.1f} (4-bit)"
                                      if row.get("footprint_4bit_mb") is not None else "–"),
             "run": row["run"]} for row in rows]


def comparison_chart(rows: list[dict]) -> alt.Chart | None:
    """One small bar chart per measure, the methods side by side in each (each with its own scale)."""
    long = [{"method": row["label"], "measure": title, "value": float(row[key])}
            for row in rows for key, title in MEASURES if isinstance(row.get(key), (int, float))]
    if not long:
        return None
    order = [title for _, title in MEASURES]
    return (alt.Chart(pd.DataFrame(long)).mark_bar()
            .encode(x=alt.X("method:N", title=None, sort=[LABELS[m] for m in METHODS]),
                    y=alt.Y("value:Q", title=None), color=alt.Color("method:N", legend=None),
                    tooltip=["method", "measure", alt.Tooltip("value:Q", format=",.3g")])
            .properties(width=130, height=160)
            .facet(facet=alt.Facet("measure:N", sort=order, title=None), columns=3)
            .resolve_scale(y="independent")
            .properties(title="Full fine-tuning vs LoRA (vs QLoRA): the same recipes, steps and evaluation"))


def _size(mb: float) -> str:
    return f"{mb:,.1f} MB" if mb < 1000 else f"{mb / 1000:,.2f} GB"


def conclusion(rows: list[dict]) -> str | None:
    """What the learner's own numbers show, in a sentence or two; None until LoRA and full both finished.

    >>> conclusion([{"method": "lora", "status": "finished", "trainable_percent": 0.34, "peak_memory_mb": 600,
    ...              "tokens_per_s": 900, "heldout_perplexity": 12.4, "saved_mb": 1.9},
    ...             {"method": "full", "status": "finished", "trainable_percent": 100, "peak_memory_mb": 1000,
    ...              "tokens_per_s": 600, "heldout_perplexity": 12.0, "saved_mb": 540}])  # doctest: +NORMALIZE_WHITESPACE
    'LoRA trained 0.34 % of the weights, used 40 % less memory at its peak and processed 1.5× as many tokens
    per second as full fine-tuning; its held-out perplexity was 3 % higher (12.40 against 12.00). What it
    saves is 1.9 MB instead of 540.0 MB.'
    """
    done = {row["method"]: row for row in rows if row["status"] == "finished"}
    lora, full = done.get("lora"), done.get("full")
    needed = ("trainable_percent", "peak_memory_mb", "tokens_per_s", "heldout_perplexity", "saved_mb")
    if not lora or not full or any(not isinstance(row.get(key), (int, float)) for row in (lora, full)
                                   for key in needed):
        return None
    memory = (lora["peak_memory_mb"] - full["peak_memory_mb"]) / full["peak_memory_mb"] if full["peak_memory_mb"] else 0
    memory_text = (f"used {100 * abs(memory):.0f} % {'less' if memory < 0 else 'more'} memory at its peak"
                   if abs(memory) >= 0.005 else "used the same memory at its peak")
    speed = lora["tokens_per_s"] / full["tokens_per_s"] if full["tokens_per_s"] else 1.0
    gap = (lora["heldout_perplexity"] - full["heldout_perplexity"]) / full["heldout_perplexity"]
    perplexity_text = (f"its held-out perplexity was {100 * abs(gap):.0f} % {'higher' if gap > 0 else 'lower'}"
                       if abs(gap) >= 0.005 else "its held-out perplexity was the same")
    text = (f"LoRA trained {lora['trainable_percent']:.2f} % of the weights, {memory_text} and processed "
            f"{speed:.1f}× as many tokens per second as full fine-tuning; {perplexity_text} "
            f"({lora['heldout_perplexity']:.2f} against {full['heldout_perplexity']:.2f}). "
            f"What it saves is {_size(lora['saved_mb'])} instead of {_size(full['saved_mb'])}.")
    qlora = done.get("qlora")
    if qlora and isinstance(qlora.get("footprint_4bit_mb"), (int, float)) and qlora.get("footprint_float32_mb"):
        text += (f" QLoRA held the model in {_size(qlora['footprint_4bit_mb'])} instead of "
                 f"{_size(qlora['footprint_float32_mb'])}"
                 + (f", with a held-out perplexity of {qlora['heldout_perplexity']:.2f}"
                    if isinstance(qlora.get("heldout_perplexity"), (int, float)) else "") + ".")
    return text
