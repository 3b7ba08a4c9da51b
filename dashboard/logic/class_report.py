"""``python -m lessons class report --out FOLDER``: the class in two files an instructor can keep or send.

* ``class.csv``: one row per learner: each stage's state (as ``class status`` reads it:
  verified, self-reported only, …), how many stages are verified, the latest training
  loss, perplexity before and after fine-tuning, the stop rate and memorised titles of
  the fine-tuned model, the stage 6 favourite, and why a folder was not read.
* ``class.html``: one self-contained file (no scripts, fonts or addresses from elsewhere)
  with the Class page's charts drawn as inline SVG (``dashboard/logic/report.py``'s
  helpers), and the same table.

Everything is read as the Class page reads it (``dashboard/logic/classroom.py``):
the learners' stores read-only, folders with a problem listed and never read.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

from lessons.engine.blind_rating import win_rate
from lessons.engine.classroom import ClassConfig
from lessons.engine.stages import STAGES
from lessons.engine.verification import (SNAPSHOT_CHANGED, VERIFICATION_FAILED, VERIFIED, LearnerMarks,
                                         status_rows)

from dashboard.logic import classroom
from dashboard.logic.classroom import LearnerSummary
from dashboard.logic.report import STYLE, bar_chart_svg, esc, line_chart_svg, table

CSV_NAME = "class.csv"
HTML_NAME = "class.html"
HEAT_ROW_PX, HEAT_CELL_PX, HEAT_NAME_PX = 18, 46, 170  # the heat map's row height, cell width, name column
NUMBER_COLUMNS = ["latest train loss", "perplexity before", "perplexity after", "stop rate (%)", "memorised titles",
                  "favourite temperature", "favourite top_p", "BLEU after", "blind win rate (%)", "blind ratings"]
COLUMNS = ["learner", "verified", *[stage.label for stage in STAGES], *NUMBER_COLUMNS, "problem"]


def class_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """One row per learner, the CSV's: the stages as ``status_rows`` has them, then the numbers, then the problem."""
    marks = [LearnerMarks(s.learner, s.folder, s.not_read_because, s.marks) for s in summaries]
    rows = []
    for summary, row in zip(summaries, status_rows(marks)):
        problem = row.pop("problem")
        before, after = classroom.perplexities(summary)
        stop, memorised = (classroom.newest_measure(summary, classroom.STOP_RATE),
                           classroom.newest_measure(summary, classroom.MEMORISED))
        favourite = summary.favourite or {}
        blind = win_rate(summary.ratings)
        numbers = [_rounded(classroom.latest_train_loss(summary)), _rounded(before), _rounded(after),
                   None if stop is None else round(100 * stop, 1), None if memorised is None else int(memorised),
                   favourite.get("temperature"), favourite.get("top_p"),
                   _rounded(classroom.newest_measure(summary, "bleu_after")),
                   None if blind["win_rate"] is None else round(100 * blind["win_rate"], 1), blind["ratings"]]
        row.update(zip(NUMBER_COLUMNS, numbers), problem=problem)
        if not summary.readable:
            row.update({stage.label: classroom.NOT_READ for stage in STAGES})
        rows.append({column: row[column] for column in COLUMNS})
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def write_csv(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    return path


# -- the HTML file ----------------------------------------------------------------------------------
def heat_map_svg(summaries: list[LearnerSummary]) -> str:
    """Learners × stages as coloured cells with their marks, the verified count last, and a legend; "" for no one."""
    if not summaries:
        return ""
    columns = [stage.label for stage in STAGES] + [classroom.VERIFIED_COLUMN]
    top, legend_h = 40, 20 * ((len(classroom.HEAT_STATES) + 3) // 4) + 10
    width = HEAT_NAME_PX + HEAT_CELL_PX * len(columns) + 20
    height = top + HEAT_ROW_PX * len(summaries) + legend_h
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Who has done what">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">Who has done what: {len(summaries)} learners × '
             f'{len(STAGES)} stages</text>']
    for index, column in enumerate(columns):
        x = HEAT_NAME_PX + HEAT_CELL_PX * index + HEAT_CELL_PX / 2
        parts.append(f'<text x="{x:.0f}" y="{top - 6}" font-size="11" text-anchor="middle">{esc(column)}</text>')
    cells = {(row["learner"], row["stage"]): row for row in classroom.heat_rows(summaries)}
    for number, summary in enumerate(summaries):
        y = top + HEAT_ROW_PX * number
        parts.append(f'<text x="{HEAT_NAME_PX - 6}" y="{y + 13}" font-size="11" text-anchor="end">'
                     f'{esc(summary.learner)}</text>')
        for index, stage in enumerate(STAGES):
            cell = cells[(summary.learner, stage.label)]
            x = HEAT_NAME_PX + HEAT_CELL_PX * index
            ink = "#fff" if cell["state"] in (VERIFIED, VERIFICATION_FAILED, SNAPSHOT_CHANGED, classroom.NOT_READ) \
                else "#222"
            parts.append(f'<rect x="{x}" y="{y}" width="{HEAT_CELL_PX - 2}" height="{HEAT_ROW_PX - 2}" '
                         f'fill="{classroom.STATE_COLOURS[cell["state"]]}"><title>{esc(summary.learner)}, stage '
                         f'{esc(stage.label)}: {esc(cell["state"])} {esc(cell["detail"])}</title></rect>'
                         f'<text x="{x + HEAT_CELL_PX / 2 - 1:.0f}" y="{y + 13}" font-size="11" text-anchor="middle" '
                         f'fill="{ink}">{esc(cell["mark"])}</text>')
        x = HEAT_NAME_PX + HEAT_CELL_PX * len(STAGES) + HEAT_CELL_PX / 2
        count = f"{summary.verified_count}/{len(STAGES)}" if summary.readable else "–"
        parts.append(f'<text x="{x:.0f}" y="{y + 13}" font-size="11" font-weight="bold" text-anchor="middle">'
                     f'{count}</text>')
    legend_top = top + HEAT_ROW_PX * len(summaries) + 14
    for index, state in enumerate(classroom.HEAT_STATES):
        x, y = 4 + (index % 4) * 190, legend_top + (index // 4) * 20
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{classroom.STATE_COLOURS[state]}" '
                     f'stroke="#999"/><text x="{x + 17}" y="{y}" font-size="11">{esc(classroom.HEAT_MARKS[state])} '
                     f'{esc(state)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def loss_svg(summaries: list[LearnerSummary]) -> str:
    """Each learner's newest training run's loss; a legend of names while the class is small enough for one."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in classroom.loss_rows(summaries):
        series.setdefault(row["learner"], []).append((row["step"], row["loss"]))
    if not series:
        return ""
    named = len(series) <= 12  # a legend of more names runs off the chart: then every line is grey
    return line_chart_svg(series, title="Training loss of each learner's newest run", y_label="train loss",
                          height=max(260, 40 + 16 * len(series)) if named else 320, legend=named,
                          colours=None if named else {name: classroom.OTHERS_COLOUR for name in series})


def perplexity_svg(summaries: list[LearnerSummary]) -> str:
    bars, colours = [], []
    for row in classroom.perplexity_rows(summaries):
        bars.append((f"{row['learner']} · {row['measure']}", row["perplexity"]))
        colours.append(classroom.BEFORE_COLOUR if row["measure"] == "before" else classroom.AFTER_COLOUR)
    return bar_chart_svg(bars, title="Perplexity before (grey) and after (blue) fine-tuning: lower is better",
                         colours=colours)


def measure_svgs(summaries: list[LearnerSummary]) -> str:
    rows = classroom.measure_rows(summaries)
    return (bar_chart_svg([(row["learner"], row["stop rate (%)"]) for row in rows],
                          title="Stop rate (%): side-by-side texts that ended at [END]")
            + bar_chart_svg([(row["learner"], row["memorised titles"]) for row in rows],
                            title="Memorised titles: texts that copy a training recipe's title"))


def favourites_svg(summaries: list[LearnerSummary]) -> str:
    return bar_chart_svg([(f"temperature {row['temperature']:g} · top-p {row['top_p']:g}", row["learners"])
                          for row in classroom.favourite_rows(summaries)],
                         title="Favourite sampling settings (stage 6): learners per pair")


def _part(title: str, content: str, *, empty: str) -> str:
    """A section: its title, then ``content``, or ``empty`` in words when there is nothing to show."""
    shown = content or f'<p class="missing">{esc(empty)}</p>'
    return f"<section><h2>{esc(title)}</h2>{shown}</section>"


def build_class_html(config: ClassConfig, summaries: list[LearnerSummary], rows: list[dict]) -> str:
    """The whole class report as one self-contained HTML document."""
    problems = classroom.problem_rows(summaries)
    favourites = classroom.favourite_rows(summaries)
    body = "".join([
        _part("Progress", heat_map_svg(summaries)
              + '<p class="muted">Only “verified” was re-checked by <code>class verify</code>; “self-reported only” '
                "is the learner's own store's word.</p>", empty="No learner has started yet."),
        _part("Training loss", loss_svg(summaries), empty="No training loss logged yet (stage 4B)."),
        _part("Perplexity before and after", perplexity_svg(summaries),
              empty="No perplexities recorded yet (stage 5)."),
        _part("Stop rate and memorisation", measure_svgs(summaries),
              empty="No stop rates or memorised titles yet (the stage 5 evaluation)."),
        _part("Favourite sampling settings", favourites_svg(summaries)
              + table([{"temperature": r["temperature"], "top_p": r["top_p"], "learners": r["learners"],
                        "who": r["who"]} for r in favourites]), empty="No favourite kept yet (stage 6)."),
        _part("Folders not read", table(problems), empty="None: every learner's folder is theirs and was read."),
        _part("Every learner", table(rows), empty="No learner yet."),
    ])
    made = time.strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>LoRA Kitchen — class report"
            f"</title><style>{STYLE}</style></head><body><h1>LoRA Kitchen — class report</h1>"
            f"<p class=\"muted\">Class <code>{esc(config.folder)}</code> · instructors: group "
            f"<strong>{esc(config.instructors)}</strong> · {len(summaries)} learners · made {esc(made)} from the "
            f"learners' stores, read-only.</p>{body}</body></html>")


def write_class_report(config: ClassConfig, out: Path) -> tuple[Path, Path]:
    """Write ``out/class.csv`` and ``out/class.html`` for the class ``config``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = classroom.read_class(config)
    rows = class_rows(summaries)
    csv_path = write_csv(rows, out / CSV_NAME)
    html_path = out / HTML_NAME
    html_path.write_text(build_class_html(config, summaries, rows), encoding="utf-8")
    return csv_path, html_path
