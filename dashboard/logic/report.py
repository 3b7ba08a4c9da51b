"""The learner's lab report: one self-contained HTML file with every deliverable of the assignment.

Everything comes from the learner's store (``Store()``), never from running
learner code, so exporting is fast and safe even when a stage is broken:

* progress: the checks of each stage;
* stage 1: the base model's "before" generations;
* stage 2: the data-mess report and cleaned, formatted samples;
* stage 3: token-length statistics and tokenization examples;
* stage 4: the training runs and their loss curves;
* stage 5: perplexity before and after, side-by-side generations, the measures beyond;
* stage 6: sampling experiments (own generations and the sweep);
* stage 7: the own-dataset cleaning report and comparison;
* the written answers to the analysis questions.

A part the learner has not done yet is written as "not done yet", never left out.

Self-contained on purpose: the file is handed in and read offline, so it has no
scripts, fonts or stylesheets from elsewhere. Charts are drawn here as inline
SVG (no Vega renderer such as ``vl-convert`` is installed in the lab's
environment, and the JavaScript one would need the network). Every piece of
learner text goes through ``html.escape``.
"""
from __future__ import annotations

import copy
import html
import math
import time
from typing import Any, Iterable

from lessons.engine.constants import END_MARKER
from lessons.engine.progress import PASSED, all_progress
from lessons.engine.stages import STAGES
from lessons.engine.store import Store

from dashboard.logic import method_compare
from dashboard.logic.questions import QUESTIONS

NOT_DONE = "not done yet"
# A colour per series, readable on white and in greyscale print (light to dark).
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
SECTIONS = ["Progress", "Before fine-tuning", "Data cleaning", "Tokenization", "Training runs and loss curves",
            "Full fine-tuning vs LoRA",
            "Perplexity before and after", "Side-by-side generations", "Beyond perplexity: overlap, latency, blind rating",
            "Experiments side by side",
            "Sampling experiments", "Your own dataset", "Chat", "Written answers"]
TOKENIZER_EXAMPLES = ["RECIPE: Banana Pancakes", "INGREDIENTS: 2 cups flour; 1 tsp baking soda; a pinch of saffron",
                      "[END]"]
# A long text in a table cell is cut: the report is read, not searched.
CELL_LIMIT = 1200

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:3px solid #e07a2f;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f6f6f6}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.6em;white-space:pre-wrap;word-break:break-word;
font-size:.88em;margin:.3em 0}
.missing{color:#9a5b00;background:#fff6e5;border-left:4px solid #e0a030;padding:.4em .7em}
.side{display:grid;grid-template-columns:1fr 1fr;gap:.8em}.muted{color:#777;font-size:.88em}
nav ol{columns:2}svg{max-width:100%;height:auto}
"""


# -- small HTML pieces ----------------------------------------------------------------------------
def esc(value: Any) -> str:
    """Any value as escaped text (learner text can hold ``<script>``: it must never become markup)."""
    return html.escape("" if value is None else str(value), quote=True)


def _anchor(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")


def missing(what: str) -> str:
    return f'<p class="missing">{esc(what)}: <strong>{NOT_DONE}</strong>.</p>'


def pre(text: Any) -> str:
    return f"<pre>{esc(text)}</pre>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = "" if value is None else str(value)
    return esc(text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT] + " …")


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{esc(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(column))}</td>" for column in columns) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- charts as inline SVG ----------------------------------------------------------------------------
def line_chart_svg(series: dict[str, list[tuple[float, float]]], *, title: str, x_label: str = "step",
                   y_label: str = "loss", width: int = 640, height: int = 260,
                   colours: dict[str, str] | None = None, legend: bool = True) -> str:
    """Lines (one per series name) with axes and a legend, as an inline ``<svg>``; "" when there are no points.

    Args:
        colours: a colour per series name; default the ``PALETTE`` in turn.
        legend: name each series beside the plot; default True (a class of 60 has too many names for it).
    """
    points = [(x, y) for values in series.values() for x, y in values]
    if not points:
        return ""
    left, right, top, bottom = 56, 150, 28, 40
    x_min, x_max = min(x for x, _ in points), max(x for x, _ in points)
    y_min, y_max = min(y for _, y in points), max(y for _, y in points)
    if x_max == x_min:
        x_max = x_min + 1
    if y_max == y_min:
        y_max, y_min = y_max + 0.5, y_min - 0.5
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y_min) / (y_max - y_min)) * plot_h

    parts = [f'<svg width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{esc(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>']
    for tick in range(5):
        value = y_min + (y_max - y_min) * tick / 4
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{value:.3g}</text>')
        x_value = x_min + (x_max - x_min) * tick / 4
        parts.append(f'<text x="{sx(x_value):.1f}" y="{top + plot_h + 14}" font-size="10" '
                     f'text-anchor="middle">{x_value:.4g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" font-size="11" '
                 f'text-anchor="middle">{esc(x_label)}</text>'
                 f'<text x="12" y="{top + plot_h / 2:.0f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2:.0f})">{esc(y_label)}</text>')
    for index, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name) or PALETTE[index % len(PALETTE)]
        values = sorted(values)
        if len(values) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in values if len(values) <= 40 else values[-1:]:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        if not legend:
            continue
        legend_y = top + 14 + 16 * index
        parts.append(f'<rect x="{left + plot_w + 10}" y="{legend_y - 9}" width="12" height="3" fill="{colour}"/>'
                     f'<text x="{left + plot_w + 26}" y="{legend_y - 4}" font-size="11">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(bars: list[tuple[str, float]], *, title: str, width: int = 640,
                  colours: list[str] | None = None) -> str:
    """Horizontal bars with their values, as an inline ``<svg>``; "" when there are none.

    Args:
        colours: a colour per bar (in the order of ``bars``); default the ``PALETTE`` in turn.
    """
    kept = [(colours[index] if colours else None, label, value) for index, (label, value) in enumerate(bars)
            if value is not None]
    if not kept:
        return ""
    label_w, bar_h, top = 220, 22, 26
    height = top + bar_h * len(kept) + 10
    largest = max(abs(value) for _, _, value in kept) or 1.0
    room = width - label_w - 80
    parts = [f'<svg width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>']
    for index, (colour, label, value) in enumerate(kept):
        y = top + index * bar_h
        length = abs(value) / largest * room
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="11" text-anchor="end">{esc(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{bar_h - 6}" '
                     f'fill="{colour or PALETTE[index % len(PALETTE)]}"/>'
                     f'<text x="{label_w + length + 4:.1f}" y="{y + 15}" font-size="11">{value:.4g}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- the sections --------------------------------------------------------------------------------------
def _latest_by_prompt(generations: Iterable[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for generation in generations:  # oldest first: the newest wins
        latest[generation["prompt"]] = generation
    return latest


def section_progress(store: Store) -> str:
    rows = []
    for item in all_progress(store):
        rows.append({"stage": item.stage.label, "topic": item.stage.title, "status": item.status,
                     "checks passed": f"{item.passed}/{item.total}" if item.total else NOT_DONE})
    passed = sum(row["status"] == PASSED for row in rows)
    out = f"<p>{passed} of {len(rows)} stages pass all their checks.</p>" + table(rows)
    failing = []
    for item in all_progress(store):
        for result in (item.last_run or {}).get("results", []):
            if result["outcome"] != "passed":
                failing.append({"stage": item.stage.label, "check": result.get("title") or result["check_name"],
                                "outcome": result["outcome"]})
    if failing:
        out += "<h3>Checks not passing yet</h3>" + table(failing)
    return out


def section_before(store: Store) -> str:
    latest = _latest_by_prompt(store.generations("stage1", "before"))
    if not latest:
        return missing("The base model's “before” generations (stage 1 page)")
    out = "<p>What the base model wrote before fine-tuning, for each prompt.</p>"
    for prompt, generation in latest.items():
        out += (f"<h4>Prompt: {esc(prompt.splitlines()[0] if prompt else '')}</h4>" + pre(prompt + generation["text"])
                + f'<p class="muted">{esc(generation["model"])} · {esc(generation["settings"])}</p>')
    return out


def section_data(store: Store) -> str:
    report = store.result("stage2", "data_mess_report")
    out = ""
    if not isinstance(report, dict):
        out += missing("The data-mess report (stage 2 page)")
    else:
        recipes, kept = report.get("recipes"), report.get("kept")
        out += table([{"raw recipes": recipes, "kept by the filter": kept,
                       "removed": (recipes - kept) if isinstance(recipes, int) and isinstance(kept, int) else ""}])
        markup = [(str(kind), _number(count)) for kind, count in (report.get("markup") or {}).items()]
        out += bar_chart_svg(markup, title="Before cleaning: recipes with each kind of markup")
        removed = [(f"removed: {rule}", _number(count)) for rule, count in (report.get("removed") or {}).items()]
        out += bar_chart_svg(removed + [("kept", _number(kept))], title="After filtering: removed and kept")
        fields = [{"field": name, "types": ", ".join(f"{t} × {n}" for t, n in (info.get("types") or {}).items()),
                   "missing": info.get("missing"), "empty": info.get("empty"),
                   "median length (clean)": (info.get("length_after_cleaning") or {}).get("median")}
                  for name, info in (report.get("fields") or {}).items() if isinstance(info, dict)]
        if fields:
            out += "<h4>What each field holds</h4>" + table(fields)
    samples = store.result("stage2", "cleaned_samples")
    if samples:
        out += "<h3>Cleaned, formatted samples</h3>" + "".join(
            pre(sample.get("text", "") if isinstance(sample, dict) else sample) for sample in samples)
    else:
        out += missing("Cleaned, formatted samples (the split on the stage 2 page)")
    return out


def with_end_marker(tokenizer):
    """The tokenizer as stage 3 leaves it, [END] one special token; a copy when it must change (never the given one)."""
    if END_MARKER in tokenizer.get_vocab():
        return tokenizer
    configured = copy.deepcopy(tokenizer)
    configured.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    return configured


def section_tokens(store: Store, tokenizer=None) -> str:
    out = ""
    stats = store.result("stage3", "token_length_stats")
    if isinstance(stats, dict) and stats:
        out += "<h4>Token lengths of the formatted recipes</h4>" + table(
            [{"measure": key, "value": value} for key, value in stats.items() if not isinstance(value, (list, dict))])
    else:
        out += missing("Token-length statistics (stage 3 page)")
    if tokenizer is not None:
        tokenizer = with_end_marker(tokenizer)
        rows = []
        for text in TOKENIZER_EXAMPLES:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            pieces = [tokenizer.decode([token_id]) for token_id in ids]
            rows.append({"text": text, "tokens": len(ids), "pieces": " | ".join(pieces),
                         "ids": " ".join(str(token_id) for token_id in ids)})
        out += ("<h4>Tokenization examples</h4><p class=\"muted\">By the base model's tokenizer with [END] added as "
                "one special token, as stage 3 does: the pieces the model reads (a space is part of the piece "
                "after it).</p>" + table(rows))
    else:
        out += missing("Tokenization examples (the base tokenizer could not be loaded)")
    return out


def section_runs(store: Store) -> str:
    runs = store.runs("train")
    if not runs:
        return missing("Training runs (stage 4B page)")
    rows, out = [], ""
    for run in runs:
        config = run.get("config") or {}
        rows.append({"run": run["id"], "name": run.get("name", ""), "status": run["status"],
                     "reason": run.get("reason", ""),
                     "settings": ", ".join(f"{key}={config.get(key)}" for key in
                                           ("rank", "learning_rate", "max_steps", "epochs", "n_recipes", "max_length")
                                           if key in config),
                     "your code": "no (reference)" if config.get("reference") else "yes"})
    out += table(rows)
    for run in runs:
        series: dict[str, list[tuple[float, float]]] = {}
        for metric in store.metrics(run["id"]):
            loss = _number(metric.get("loss"))
            if loss is not None:
                series.setdefault(f"{metric['split']} loss", []).append((float(metric["step"]), loss))
        chart = line_chart_svg(series, title=f"Loss of run {run['id']} ({run['status']})")
        out += f"<h4>Run {esc(run['id'])}</h4>" + (chart or missing("Metrics of this run"))
    return out


def section_methods(store: Store) -> str:
    rows = method_compare.comparison_rows(store)
    if not rows:
        return missing("The full fine-tuning vs LoRA comparison (stage 4B page)")
    sentence = method_compare.conclusion(rows)
    return (f"<p>{esc(sentence)}</p>" if sentence else "") + table(method_compare.table_rows(rows))


def section_perplexity(store: Store) -> str:
    latest: dict[tuple, dict] = {}
    for evaluation in store.evaluations("stage5"):
        if evaluation["name"] in ("perplexity_before", "perplexity_after"):
            latest[(evaluation["run_id"], evaluation["name"])] = evaluation
    if not latest:
        return missing("Perplexity before and after fine-tuning (stage 5 page)")
    rows = [{"run": run_id, "model": "before (base)" if name.endswith("before") else "after (LoRA)",
             "perplexity": _number(e["value"]), "held-out recipes": (e.get("details") or {}).get("recipes")}
            for (run_id, name), e in latest.items()]
    bars = [(f"{row['model']} · {str(row['run'])[-13:]}", row["perplexity"]) for row in rows]
    out = bar_chart_svg(bars, title="Perplexity on held-out recipes (lower is better)") + table(rows)
    beyond = [e for e in store.evaluations("stage5") if ":" in e["name"]]
    if beyond:
        newest: dict[tuple, dict] = {}
        for evaluation in beyond:
            newest[(evaluation["run_id"], evaluation["name"])] = evaluation
        out += "<h4>Beyond perplexity</h4>" + table(
            [{"run": run_id, "measure": name, "value": _number(e["value"])} for (run_id, name), e in newest.items()])
    return out


def section_side_by_side(store: Store) -> str:
    result = store.result("stage5", "evaluation")
    comparisons = (result or {}).get("comparisons") if isinstance(result, dict) else None
    if not comparisons:
        after = _latest_by_prompt(store.generations("stage5", "after"))
        if not after:
            return missing("Side-by-side generations of the base and fine-tuned model (stage 5 page)")
        comparisons = [{"prompt": prompt, "finetuned": generation["text"]} for prompt, generation in after.items()]
    before = _latest_by_prompt(store.generations("stage1", "before"))
    out = f'<p class="muted">Run {esc((result or {}).get("run", ""))}</p>' if isinstance(result, dict) else ""
    for comparison in comparisons:
        prompt = str(comparison.get("prompt", ""))
        base = comparison.get("base", comparison.get("base_text"))
        if not isinstance(base, str):
            base = (before.get(prompt) or {}).get("text", "")
        tuned = comparison.get("finetuned", comparison.get("finetuned_text", ""))
        out += (f"<h4>Prompt: {esc(prompt.splitlines()[0] if prompt else '')}</h4><div class=\"side\">"
                f"<div><strong>base</strong>{pre(prompt + str(base or ''))}</div>"
                f"<div><strong>fine-tuned</strong>{pre(prompt + str(tuned or ''))}</div></div>")
    return out


def section_experiments(store: Store) -> str:
    """The learner's training runs compared: the settings that differ (with what each is), then the results."""
    from dashboard.logic import experiments
    from dashboard.logic.runs import training_settings_class

    runs = [run for run in store.runs("train") if not (run.get("config") or {}).get("reference")]
    if len(runs) < 2:
        return missing("Two or more of your own training runs to compare (Experiments page)")
    try:
        settings_class = training_settings_class()
    except ImportError:  # the training engine is missing: the settings are read from the runs' configs
        settings_class = None
    diff = experiments.settings_diff(runs, settings_class)
    metrics = {run["id"]: store.metrics(run["id"]) for run in runs}
    rows = experiments.comparison_rows(runs, metrics, store.evaluations("stage5"))
    out = "<h4>Settings that differ</h4>" + (table(diff["differ"]) or "<p>None: these runs share every setting.</p>")
    out += f'<p class="muted">The same in all: {esc(", ".join(diff["same"]))}.</p>'
    series = {}
    for row in experiments.loss_overlay_rows(runs, metrics):
        # The legend is narrow: each line named by the end of its run's id, which the tables show too.
        name = f"{row['run'].rsplit(' · ', 1)[-1]} {row['split']}"
        series.setdefault(name, []).append((float(row["step"]), row["loss"]))
    out += line_chart_svg(series, title="Loss curves of your runs (named by the end of each run's id)")
    return out + "<h4>Results</h4>" + table(rows)


def section_beyond(store: Store) -> str:
    """BLEU/ROUGE and latency of the newest evaluation, base vs fine-tuned, and the learner's blind win rate."""
    from dashboard.logic import beyond
    from lessons.engine.blind_rating import saved_ratings, win_rate

    result = store.result("stage5", "evaluation")
    result = result if isinstance(result, dict) else None
    overlap, timing = beyond.overlap_rows(result), beyond.latency_rows(result)
    out = ""
    if overlap:
        recipes = result["overlap"].get("recipes")
        out += bar_chart_svg([(f"{row['measure']} · {row['model']}", row["score"]) for row in overlap],
                             title=f"BLEU and ROUGE (× 100) against {recipes} held-out recipes (higher: more words "
                                   "in common)") + table(overlap)
        out += ('<p class="muted">Word overlap with one real recipe per title: it rewards sounding like that recipe; '
                "a correct recipe in other words scores low, and no word count knows whether the food works.</p>")
    else:
        out += missing("BLEU and ROUGE against held-out recipes (stage 5 page: Evaluate)")
    if timing:
        out += "<h4>Latency</h4>" + table(timing) + f'<p class="muted">{esc(beyond.latency_caption(result))}</p>'
    else:
        out += missing("Latency, base vs fine-tuned (stage 5 page: Evaluate)")
    stats = win_rate(saved_ratings(store))
    out += "<h4>Blind evaluation</h4>"
    if stats["ratings"]:
        out += f"<p>{esc(beyond.win_rate_sentence(stats))}</p>" + table(beyond.win_rate_rows(stats))
    else:
        out += missing("Your blind ratings of base vs fine-tuned pairs (stage 5 page)")
    return out


def section_sampling(store: Store) -> str:
    out = ""
    custom = store.generations("stage6", "custom")
    if custom:
        out += "<h4>Your generation loop</h4>" + table(
            [{"model": g["model"], "settings": g["settings"], "text": g["prompt"] + g["text"]} for g in custom[-6:]])
    else:
        out += missing("Generations with your own sampling loop (stage 6 page)")
    sweep = store.result("stage6", "sweep")
    if sweep:
        out += bar_chart_svg([(f"T={row.get('temperature')} p={row.get('top_p')}", _number(row.get("repetition")))
                              for row in sweep], title="How much each text repeats itself (0 = never)")
        out += "<h4>The sweep</h4>" + table([{"temperature": row.get("temperature"), "top_p": row.get("top_p"),
                                              "text": row.get("text")} for row in sweep])
    else:
        out += missing("The temperature and top-p sweep (stage 6 page)")
    return out


def section_own(store: Store) -> str:
    out = ""
    report = store.result("stage7", "cleaning_report")
    if isinstance(report, dict):
        summary = {key: report.get(key) for key in ("rows_in", "rows_out")}
        rows = [{"step": f"repaired: {name}", "rows": count} for name, count in (report.get("repaired") or {}).items()]
        rows += [{"step": f"removed: {name}", "rows": count} for name, count in (report.get("removed") or {}).items()]
        out += table([summary]) + table(rows)
    else:
        out += missing("The cleaning report of your own dataset (stage 7 page)")
    comparison = store.result("stage7", "comparison")
    if comparison:
        out += "<h4>Base, recipe model, your model</h4>" + table(comparison)
    else:
        out += missing("The comparison on your own prompts (stage 7 page)")
    return out


def section_chat(store: Store) -> str:
    """The chat's saved answers (Chat page), newest first, cleared ones too, at most ``chat.REPORT_EXCHANGES``."""
    from dashboard.logic import chat

    rows = chat.report_exchanges(store)
    if not rows:
        return missing("A conversation with your model (Chat page)")
    total = len(chat.exchanges(store, include_cleared=True))
    out = f'<p class="muted">{len(rows)} of your {total} chat answer(s), newest first.</p>'
    return out + table([_chat_row(row, chat.RECIPE) for row in rows])


def _chat_row(row: dict, recipe_kind: str) -> dict:
    settings = row.get("settings") or {}
    return {"asked": time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"])), "model": row["model"],
            "request": settings.get("request", ""),
            "answer": row["prompt"] + row["text"] if settings.get("kind") == recipe_kind else row["text"],
            "settings": f"temperature {settings.get('temperature')}, top-p {settings.get('top_p')}, "
                        f"limit {settings.get('max_new_tokens')}",
            "stopped": settings.get("stop_reason", ""), "tokens/s": settings.get("tokens_per_s")}


def section_answers(store: Store) -> str:
    answers = store.answers()
    out, unanswered = "", 0
    for stage in STAGES:
        questions = QUESTIONS.get(stage.key, [])
        if not questions:
            continue
        out += f"<h3>Stage {esc(stage.label)} — {esc(stage.title)}</h3>"
        for number, question in enumerate(questions, start=1):
            answer = (answers.get((stage.key, question.key)) or "").strip()
            out += f"<p><strong>{number}. {esc(question.text)}</strong></p>"
            if answer:
                out += f"<blockquote>{pre(answer)}</blockquote>"
            else:
                unanswered += 1
                out += missing("Your answer")
    return f"<p>{unanswered} question(s) still unanswered.</p>" + out


def build_report_html(store: Store, *, tokenizer=None, title: str = "LoRA Kitchen — lab report") -> str:
    """The whole report as one HTML document (a string), read from ``store`` only.

    Args:
        tokenizer: the base model's tokenizer, for the tokenization examples; default none (that part
            then says it is missing). The engine's, never one configured by learner code.
        title: the document's title.
    """
    builders = [section_progress, section_before, section_data, lambda s: section_tokens(s, tokenizer), section_runs,
                section_methods,
                section_perplexity, section_side_by_side, section_beyond, section_experiments, section_sampling, section_own,
                section_chat, section_answers]
    body = ""
    for name, build in zip(SECTIONS, builders):
        try:
            content = build(store)
        except Exception as error:  # noqa: BLE001 - one odd row must not cost the learner the whole report
            content = f'<p class="missing">This part could not be read from the store: {esc(type(error).__name__)}: ' \
                      f'{esc(error)}</p>'
        body += f'<section id="{_anchor(name)}"><h2>{esc(name)}</h2>{content}</section>'
    contents = "".join(f'<li><a href="#{_anchor(name)}">{esc(name)}</a></li>' for name in SECTIONS)
    made = time.strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"
            f"<p class=\"muted\">Learner <strong>{esc(store.learner)}</strong> · made {esc(made)} from the lab's store "
            f"· parts marked “{NOT_DONE}” are still to do.</p><nav><ol>{contents}</ol></nav>{body}</body></html>")
