"""The instructors' view of a class: every learner's marks, runs and measures, read-only, never their code.

A class is a folder made by ``python -m lessons class init DIR --instructors GROUP``
(``lessons/engine/classroom.py``). Each learner is their Unix account, and their
lab writes to ``DIR/<account>/lab.sqlite`` in a folder only they write and the
instructors' group reads. This module reads those stores for the Class page and
``class report``:

* who the learners are and which folders cannot be trusted come from the engine
  (``learner_folders``): a folder with a problem is listed with it, never read;
* each stage's mark (verified, self-reported only, …) comes from
  ``lessons.engine.verification.class_marks``;
* the rest (training runs and their losses, stage 5's perplexities and measures,
  the blind ratings of stage 5's pairs, the stage 6 favourite sampling settings)
  from each store, opened read-only.

The charts are Altair charts built from plain rows, so tests read their spec;
the page only calls ``st.altair_chart``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import altair as alt
import pandas as pd

from lessons.engine.blind_rating import saved_ratings, win_rate
from lessons.engine.classroom import ClassConfig
from lessons.engine.stages import STAGES
from lessons.engine.store import Store
from lessons.engine.verification import (FAILING, MARKS, NOT_STARTED, SELF_REPORTED, SNAPSHOT_CHANGED, STATES,
                                         VERIFICATION_FAILED, VERIFIED, LearnerMarks, StageMark, class_marks)

SETUP_TEXT = """\
A class is a folder on the shared server that each learner's lab writes to, as their own Unix account.

1. As root (or an instructor), make it: `sudo .venv/bin/python -m lessons class init /srv/lora-kitchen/class \
--instructors GROUP`; the members of `GROUP` are the class's instructors.
2. Each learner starts their lab with it: `LAB_CLASS_DIR=/srv/lora-kitchen/class bash dashboard/start.sh`.
3. An instructor starts their own dashboard with the same `LAB_CLASS_DIR`; this page then lists every learner.

The Class page only reads the learners' stores; it never runs a learner's code.
"""

# The page refreshes itself every REFRESH_SECONDS, training or not (see dashboard/views/class_room.py).
REFRESH_SECONDS = 15
ACTIVE_STATUSES = ("running", "queued")  # a run in one of these is still changing its learner's numbers

NOT_READ = "not read"  # the learner's folder has a problem (or their store cannot be read): nothing of it is shown
HEAT_STATES = (*STATES, NOT_READ)
STATE_COLOURS = {VERIFIED: "#1a9641", SELF_REPORTED: "#a6d96a", VERIFICATION_FAILED: "#d7191c",
                 SNAPSHOT_CHANGED: "#7b3294", FAILING: "#fdae61", NOT_STARTED: "#eeeeee", NOT_READ: "#636363"}
HEAT_MARKS = {**MARKS, NOT_READ: "?"}
VERIFIED_COLUMN = "verified"  # the heat map's last column: how many stages each learner has verified

HIGHLIGHT_COLOUR = "#d62728"  # the learner picked on the loss chart; everyone else is OTHERS_COLOUR
OTHERS_COLOUR = "#b0b0b0"
BEFORE_COLOUR, AFTER_COLOUR = "#7f7f7f", "#1f77b4"  # perplexity of the base model, then of the fine-tuned one

STOP_RATE = "finetuned: stop rate"                # stage 5's job: share of side-by-side texts that ended at [END]
MEMORISED = "finetuned: memorised titles"         # stage 5's job: texts that copy a training recipe's title


@dataclass(frozen=True)
class Layout:
    """How big the Class page draws: for a laptop, or for a 1280×720 projector (``PRESENTING``)."""
    row_px: int          # one learner's row on the charts that list every learner
    font_px: int         # labels on those charts
    chart_px: int        # the height of a chart that does not list the learners (loss curves, favourites)


NORMAL = Layout(row_px=18, font_px=12, chart_px=320)
# On a projector: labels readable from the back of the room, and a loss chart that fits in 720 px with its title.
PRESENTING = Layout(row_px=26, font_px=17, chart_px=420)

PRESENTING_CSS = """
<style>
/* Presenting: large type for the back of the room, the full width of a 1280 px projector. */
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] {display: none;}
[data-testid="stMainBlockContainer"] {max-width: 100%; padding: 1.2rem 1.5rem 3rem;}
[data-testid="stMainBlockContainer"] p, [data-testid="stMainBlockContainer"] li,
[data-testid="stMainBlockContainer"] label, [data-testid="stMainBlockContainer"] [data-testid="stCaptionContainer"]
  {font-size: 1.3rem;}
[data-testid="stMainBlockContainer"] h1 {font-size: 2.6rem;}
[data-testid="stMainBlockContainer"] h3 {font-size: 1.9rem;}
</style>
"""


# -- who may look -----------------------------------------------------------------------------------
def refusal(config: ClassConfig, account: str) -> str:
    """What a learner reads who opens the Class page: it is the instructors' (their group), not theirs."""
    return (f"The Class page is for the instructors of this class (group {config.instructors}); "
            f"you are signed in as {account}. Your own progress is on Home and on each stage's page.")


# -- reading the class ------------------------------------------------------------------------------
@dataclass
class LearnerSummary:
    """One learner as the Class page shows them; ``problem`` or ``error`` set: nothing of theirs was read."""
    learner: str
    folder: Path
    problem: str = ""                                      # why the folder is not trusted (from the engine)
    error: str = ""                                        # why their store could not be read
    marks: dict[str, StageMark] = field(default_factory=dict)  # stage key -> mark
    runs: list[dict] = field(default_factory=list)         # training runs, oldest first, each with its "metrics"
    evaluations: list[dict] = field(default_factory=list)  # stage 5's evaluations, oldest first
    favourite: dict | None = None                          # stage 6: {"temperature", "top_p", "text"}
    ratings: dict = field(default_factory=dict)            # stage 5's blind ratings: pair id -> {"winner", ...}
    active_runs: int = 0                                   # runs of any kind still queued or running

    @property
    def readable(self) -> bool:
        return not self.problem and not self.error

    @property
    def verified_count(self) -> int:
        return sum(mark.state == VERIFIED for mark in self.marks.values())

    @property
    def not_read_because(self) -> str:
        return self.problem or self.error


def read_class(config: ClassConfig) -> list[LearnerSummary]:
    """Every learner of the class, in account order: marks from the engine, the rest from their store (read-only)."""
    return [read_learner(marks) for marks in _marks_of_everyone(config)]


def _marks_of_everyone(config: ClassConfig) -> list[LearnerMarks]:
    return class_marks(config)  # a store that cannot be read comes back as that learner's problem


def read_learner(marks: LearnerMarks) -> LearnerSummary:
    """One learner's runs, measures and favourite, from their store read-only; never from a folder with a problem."""
    summary = LearnerSummary(marks.learner, marks.folder, marks.problem, marks=dict(marks.marks))
    store_file = marks.folder / "lab.sqlite"
    if marks.problem or not store_file.exists():
        return summary
    try:
        with Store(store_file, read_only=True, learner=marks.learner) as store:
            every_run = store.runs()
            summary.active_runs = sum(run["status"] in ACTIVE_STATUSES for run in every_run)
            for run in every_run:
                if run["kind"] == "train":
                    run["metrics"] = store.metrics(run["id"])
                    summary.runs.append(run)
            summary.evaluations = store.evaluations("stage5")
            favourite = store.result("stage6", "favourite")
            summary.favourite = favourite if isinstance(favourite, dict) else None
            summary.ratings = saved_ratings(store)
    except Exception as error:  # noqa: BLE001 - one unreadable store must not hide the class
        summary.error = f"its store cannot be read: {type(error).__name__}: {error}"
        summary.runs, summary.evaluations, summary.favourite, summary.active_runs = [], [], None, 0
        summary.ratings = {}
    return summary


def training_now(summaries: list[LearnerSummary]) -> int:
    """How many learners have a run queued or running (training or evaluating)."""
    return sum(summary.active_runs > 0 for summary in summaries)


# -- one learner's numbers ----------------------------------------------------------------------------
def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _split(metric: dict) -> str:
    return "validation" if metric["split"] in ("eval", "validation") else metric["split"]


def newest_run_with_loss(summary: LearnerSummary, split: str = "train") -> dict | None:
    """The learner's newest training run that logged a loss on ``split`` (train or validation)."""
    for run in reversed(summary.runs):
        if any(_split(m) == split and _finite(m.get("loss")) is not None for m in run["metrics"]):
            return run
    return None


def latest_train_loss(summary: LearnerSummary) -> float | None:
    """The last training loss of the learner's newest run that logged one."""
    run = newest_run_with_loss(summary)
    if run is None:
        return None
    losses = [_finite(m.get("loss")) for m in run["metrics"] if _split(m) == "train"]
    return [loss for loss in losses if loss is not None][-1]


def newest_measure(summary: LearnerSummary, name: str, *, run_id: str | None = None) -> float | None:
    """The newest value of the stage 5 evaluation ``name`` (of the training run ``run_id``, when given)."""
    for evaluation in reversed(summary.evaluations):
        if evaluation["name"] == name and (run_id is None or evaluation["run_id"] == run_id):
            value = _finite(evaluation["value"])
            if value is not None:
                return value
    return None


def perplexities(summary: LearnerSummary) -> tuple[float | None, float | None]:
    """(before, after) fine-tuning: the newest "after" and the "before" measured with it.

    The stage 5 job saves both under the training run it evaluated; the pipeline saves
    "before" once, without a run: then the newest "before" is the one.
    """
    after_row = next((e for e in reversed(summary.evaluations)
                      if e["name"] == "perplexity_after" and _finite(e["value"]) is not None), None)
    if after_row is None:
        return newest_measure(summary, "perplexity_before"), None
    before = newest_measure(summary, "perplexity_before", run_id=after_row["run_id"]) if after_row["run_id"] else None
    return (before if before is not None else newest_measure(summary, "perplexity_before"),
            _finite(after_row["value"]))


# -- rows -----------------------------------------------------------------------------------------------
def heat_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """One cell per learner and stage: its state, its mark, the checks that passed and why."""
    rows = []
    for summary in summaries:
        for stage in STAGES:
            mark = summary.marks.get(stage.key) or StageMark(stage.key, NOT_STARTED)
            state = mark.state if summary.readable else NOT_READ
            rows.append({"learner": summary.learner, "stage": stage.label, "state": state,
                         "mark": HEAT_MARKS[state],
                         "checks": f"{mark.passed}/{mark.total}" if mark.total and state != NOT_STARTED else "",
                         "detail": summary.not_read_because if state == NOT_READ else mark.detail})
    return rows


def loss_rows(summaries: list[LearnerSummary], *, split: str = "train") -> list[dict]:
    """The loss curve of each learner's newest training run, one row per logged step (``split``: train or validation)."""
    rows = []
    for summary in summaries:
        run = newest_run_with_loss(summary, split)
        if run is None:
            continue
        for metric in run["metrics"]:
            loss = _finite(metric.get("loss"))
            if _split(metric) == split and loss is not None:
                rows.append({"learner": summary.learner, "run": run["id"], "step": metric["step"], "loss": loss})
    return rows


def perplexity_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """Each learner's perplexity before and after fine-tuning (newest), one row per measured value."""
    rows = []
    for summary in summaries:
        before, after = perplexities(summary)
        for measure, value in (("before", before), ("after", after)):
            if value is not None:
                rows.append({"learner": summary.learner, "measure": measure, "perplexity": value})
    return rows


def measure_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """Each evaluated learner's stop rate (per cent) and memorised titles, as stage 5 measured the fine-tuned model."""
    rows = []
    for summary in summaries:
        stop, memorised = newest_measure(summary, STOP_RATE), newest_measure(summary, MEMORISED)
        if stop is None and memorised is None:
            continue
        rows.append({"learner": summary.learner, "stop rate (%)": None if stop is None else round(100 * stop, 1),
                     "memorised titles": None if memorised is None else int(memorised)})
    return rows


def win_rate_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """Each learner who rated blind pairs: the fine-tuned model's win rate (per cent, a tie half) and how many."""
    rows = []
    for summary in summaries:
        stats = win_rate(summary.ratings)
        if stats["ratings"]:
            rows.append({"learner": summary.learner, "win rate (%)": round(100 * stats["win_rate"], 1),
                         "ratings": stats["ratings"]})
    return rows


def class_win_rate(summaries: list[LearnerSummary]) -> dict:
    """The class's win rate, every learner's ratings pooled (a learner with more ratings weighs more), with how
    many learners it rests on: ``win_rate``'s counts plus ``"learners"``."""
    pooled = [rating for summary in summaries for rating in summary.ratings.values()]
    return {**win_rate(pooled), "learners": sum(bool(summary.ratings) for summary in summaries)}


def bleu_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """Each evaluated learner's newest BLEU against held-out recipes, base and fine-tuned."""
    rows = []
    for summary in summaries:
        after = next((e for e in reversed(summary.evaluations)
                      if e["name"] == "bleu_after" and _finite(e["value"]) is not None), None)
        if after is not None:
            base = newest_measure(summary, "bleu_base", run_id=after["run_id"])
            rows.append({"learner": summary.learner, "BLEU, fine-tuned": round(float(after["value"]), 2),
                         "BLEU, base": None if base is None else round(base, 2)})
    return rows


def favourite_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """The class's favourite (temperature, top-p) pairs, with how many learners kept each, most kept first."""
    counts: dict[tuple[float, float], list[str]] = {}
    for summary in summaries:
        favourite = summary.favourite or {}
        temperature, top_p = _finite(favourite.get("temperature")), _finite(favourite.get("top_p"))
        if temperature is not None and top_p is not None:
            counts.setdefault((round(temperature, 2), round(top_p, 2)), []).append(summary.learner)
    rows = [{"temperature": t, "top_p": p, "learners": len(names), "who": ", ".join(names)}
            for (t, p), names in counts.items()]
    return sorted(rows, key=lambda row: (-row["learners"], row["temperature"], row["top_p"]))


def problem_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """The learners whose folder or store was not read, and why."""
    return [{"learner": s.learner, "folder": str(s.folder), "problem": s.not_read_because}
            for s in summaries if not s.readable]


def counts_by_state(summaries: list[LearnerSummary]) -> dict[str, int]:
    """How many learner × stage cells are in each state (the heat map's legend, in numbers)."""
    counts = {state: 0 for state in HEAT_STATES}
    for row in heat_rows(summaries):
        counts[row["state"]] += 1
    return counts


# -- charts -----------------------------------------------------------------------------------------------
def _height(learners: int, layout: Layout) -> int:
    return max(1, learners) * layout.row_px


def _learner_axis(layout: Layout) -> alt.Axis:
    """The axis that names each learner: every name drawn (no overlap culling), centred on its row, never pushed
    flush to the chart's ends (Streamlit's theme would move the first and last)."""
    return alt.Axis(labelFontSize=layout.font_px, labelOverlap=False, labelLimit=260, labelBaseline="middle",
                    labelFlush=False, labelBound=False, ticks=False, domain=False)


def heat_map_chart(summaries: list[LearnerSummary], *, layout: Layout = NORMAL) -> alt.LayerChart:
    """Learners × stages, each cell coloured by its state with its mark; the last column counts the verified stages.

    Its height grows with the class (``layout.row_px`` a learner) and every name is drawn
    (``labelOverlap=False``): a class of 60 is all there, never cut or scrolled inside the chart.
    """
    learners = [summary.learner for summary in summaries]
    columns = [stage.label for stage in STAGES] + [VERIFIED_COLUMN]
    cells = pd.DataFrame(heat_rows(summaries), columns=["learner", "stage", "state", "mark", "checks", "detail"])
    counts = pd.DataFrame([{"learner": s.learner, "stage": VERIFIED_COLUMN,
                            "mark": f"{s.verified_count}/{len(STAGES)}" if s.readable else "–"} for s in summaries],
                          columns=["learner", "stage", "mark"])
    x = alt.X("stage:N", sort=columns, scale=alt.Scale(domain=columns), title=None,
              axis=alt.Axis(orient="top", labelAngle=0, labelFontSize=layout.font_px, ticks=False, domain=False))
    y = alt.Y("learner:N", sort=learners, scale=alt.Scale(domain=learners), title=None, axis=_learner_axis(layout))
    colour = alt.Color("state:N", title="stage", scale=alt.Scale(domain=list(HEAT_STATES),
                                                                 range=[STATE_COLOURS[s] for s in HEAT_STATES]),
                       legend=alt.Legend(orient="bottom", columns=4, labelFontSize=layout.font_px,
                                         titleFontSize=layout.font_px, symbolSize=layout.font_px * 12))
    rects = alt.Chart(cells).mark_rect(stroke="white", strokeWidth=1.5).encode(
        x=x, y=y, color=colour, tooltip=["learner:N", "stage:N", "state:N", "checks:N", "detail:N"])
    marks = alt.Chart(cells).mark_text(fontSize=layout.font_px).encode(
        x=x, y=y, text="mark:N",
        color=alt.condition(alt.FieldOneOfPredicate("state", [VERIFIED, VERIFICATION_FAILED, SNAPSHOT_CHANGED,
                                                               NOT_READ]),
                            alt.value("white"), alt.value("#222")))
    verified = alt.Chart(counts).mark_text(fontSize=layout.font_px, fontWeight="bold").encode(x=x, y=y, text="mark:N")
    return alt.layer(rects, marks, verified).properties(
        height=_height(len(learners), layout),
        title=alt.TitleParams(f"Who has done what: {len(learners)} learners × {len(STAGES)} stages",
                              fontSize=layout.font_px + 2, anchor="start"))


def loss_overlay_chart(rows: list[dict], *, highlight: str | None, layout: Layout = NORMAL,
                       split: str = "train") -> alt.LayerChart:
    """Everyone's loss curve in grey, ``highlight``'s on top in colour (rows from ``loss_rows``)."""
    frame = pd.DataFrame(rows, columns=["learner", "run", "step", "loss"])
    others, picked = frame[frame["learner"] != highlight], frame[frame["learner"] == highlight]
    x = alt.X("step:Q", title="optimizer step", axis=alt.Axis(format="d", tickMinStep=1,
                                                               labelFontSize=layout.font_px,
                                                               titleFontSize=layout.font_px))
    y = alt.Y("loss:Q", title=f"{split} loss", scale=alt.Scale(zero=False),
              axis=alt.Axis(labelFontSize=layout.font_px, titleFontSize=layout.font_px))
    tooltip = ["learner:N", "step:Q", alt.Tooltip("loss:Q", format=".3f")]
    grey = alt.Chart(others).mark_line(color=OTHERS_COLOUR, strokeWidth=1.5, opacity=0.7).encode(
        x=x, y=y, detail="run:N", tooltip=tooltip)
    coloured = alt.Chart(picked).mark_line(color=HIGHLIGHT_COLOUR, strokeWidth=3.5,
                                           point=alt.OverlayMarkDef(color=HIGHLIGHT_COLOUR, size=30)).encode(
        x=x, y=y, detail="run:N", tooltip=tooltip)
    who = f"{highlight} in red, everyone else in grey" if highlight else "everyone"
    return alt.layer(grey, coloured).properties(
        height=layout.chart_px, title=alt.TitleParams(f"{split.capitalize()} loss of each learner's newest run: {who}",
                                                      fontSize=layout.font_px + 2, anchor="start"))


def perplexity_chart(rows: list[dict], *, learners: list[str], layout: Layout = NORMAL) -> alt.LayerChart:
    """Each learner's perplexity before (grey) and after (blue) fine-tuning, joined by a line: lower is better."""
    frame = pd.DataFrame(rows, columns=["learner", "measure", "perplexity"])
    shown = [name for name in learners if name in set(frame["learner"])]
    y = alt.Y("learner:N", sort=shown, scale=alt.Scale(domain=shown), title=None, axis=_learner_axis(layout))
    x = alt.X("perplexity:Q", scale=alt.Scale(zero=False), title="perplexity on held-out recipes (lower is better)",
              axis=alt.Axis(labelFontSize=layout.font_px, titleFontSize=layout.font_px))
    line = alt.Chart(frame).mark_line(color="#999").encode(x=x, y=y, detail="learner:N")
    points = alt.Chart(frame).mark_point(filled=True, size=layout.font_px * 8).encode(
        x=x, y=y, color=alt.Color("measure:N", title=None, scale=alt.Scale(domain=["before", "after"],
                                                                          range=[BEFORE_COLOUR, AFTER_COLOUR]),
                                  legend=alt.Legend(orient="top", labelFontSize=layout.font_px)),
        tooltip=["learner:N", "measure:N", alt.Tooltip("perplexity:Q", format=".2f")])
    return alt.layer(line, points).properties(
        height=_height(len(shown), layout),
        title=alt.TitleParams("Each learner's newest evaluation: before (grey) and after (blue)",
                              fontSize=layout.font_px + 2, anchor="start"))


def measure_chart(rows: list[dict], *, measure: str, learners: list[str], title: str,
                  layout: Layout = NORMAL) -> alt.Chart:
    """One bar per learner of ``measure`` (a column of ``measure_rows``), learners in class order."""
    frame = pd.DataFrame([row for row in rows if row.get(measure) is not None], columns=["learner", measure])
    shown = [name for name in learners if name in set(frame["learner"])]
    scale = alt.Scale(domain=[0, 100]) if measure.endswith("(%)") else alt.Undefined
    return alt.Chart(frame).mark_bar(color=AFTER_COLOUR).encode(
        y=alt.Y("learner:N", sort=shown, scale=alt.Scale(domain=shown), title=None, axis=_learner_axis(layout)),
        x=alt.X(f"{measure}:Q", scale=scale, axis=alt.Axis(labelFontSize=layout.font_px, tickMinStep=1,
                                                            titleFontSize=layout.font_px)),
        tooltip=["learner:N", f"{measure}:Q"],
    ).properties(height=_height(len(shown), layout),
                 title=alt.TitleParams(title, fontSize=layout.font_px + 2, anchor="start"))


def favourites_chart(rows: list[dict], *, layout: Layout = NORMAL) -> alt.LayerChart:
    """The class's favourite (temperature, top-p) pairs: a circle each, as large as the learners who kept it."""
    frame = pd.DataFrame(rows, columns=["temperature", "top_p", "learners", "who"])
    # A little room past 2 and 1, the largest settings the stage 6 sliders allow: a circle there is drawn whole.
    x = alt.X("temperature:Q", scale=alt.Scale(domain=[0, 2.1], nice=False),
              axis=alt.Axis(values=[0, 0.5, 1, 1.5, 2], labelFontSize=layout.font_px, titleFontSize=layout.font_px))
    y = alt.Y("top_p:Q", title="top-p", scale=alt.Scale(domain=[0, 1.08], nice=False),
              axis=alt.Axis(values=[0, 0.25, 0.5, 0.75, 1], labelFontSize=layout.font_px,
                            titleFontSize=layout.font_px))
    circles = alt.Chart(frame).mark_circle(color="#ff7f0e", opacity=0.75).encode(
        x=x, y=y, size=alt.Size("learners:Q", legend=None, scale=alt.Scale(range=[200, 2400])),
        tooltip=["temperature:Q", "top_p:Q", "learners:Q", "who:N"])
    counts = alt.Chart(frame).mark_text(fontSize=layout.font_px, fontWeight="bold").encode(x=x, y=y, text="learners:Q")
    return alt.layer(circles, counts).properties(
        height=layout.chart_px,
        title=alt.TitleParams("Favourite sampling settings (stage 6): learners per pair", fontSize=layout.font_px + 2,
                              anchor="start"))


# -- stage 6's favourite ----------------------------------------------------------------------------------
FAVOURITE = ("stage6", "favourite")  # where ``store.put_result`` keeps a learner's favourite sampling settings


def favourite_settings(generation: dict) -> dict:
    """What "Keep these settings as my favourite" saves of a stage 6 generation: its settings and its text."""
    settings = generation.get("settings") or {}
    return {"temperature": settings.get("temperature"), "top_p": settings.get("top_p"),
            "text": generation.get("prompt", "") + generation.get("text", "")}


def is_favourite(generation: dict, favourite: dict | None) -> bool:
    """The generation is the one the learner kept (same settings, same text)."""
    return bool(favourite) and favourite == favourite_settings(generation)
