"""Experiments side by side: runs compared setting by setting, and the variant with one setting changed.

Read from the store only (no model, no Streamlit), so the Experiments page, the lab report and the
tests call the same functions:

* ``settings_diff(runs, settings_class)``: only the settings that differ between the runs, each with
  its help text; the rest named once as "same in all";
* ``loss_overlay_rows(runs, metrics)``: every chosen run's training and validation loss, for one chart;
* ``comparison_rows(runs, metrics, evaluations)``: one row per run (final losses, perplexity after,
  stop rate, steps, tokens per second, time, status);
* ``variant_settings(run, field, value, settings_class)``: the run's settings with one field changed,
  refused in words when the value does not fit the field or is what the run already had;
* ``queue_variant(...)``: that variant queued through ``lessons.engine.jobs.start_job``, named
  "<run> · rank 16".
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from lessons.engine.errors import LabError
from lessons.engine.store import Store

from .tiers import recipes_used

# Keys of a run's config that are not TrainSettings fields but still change what was trained.
EXTRA_SETTINGS = {
    "reference": "trained with the reference solutions (demo mode) instead of your own code",
    "own_dataset": "trained on your own file (stage 7) instead of the recipes",
}
# Stage 5's evaluation names (lessons/engine/evaluation.py) that the comparison reads.
PERPLEXITY_AFTER = "perplexity_after"
PERPLEXITY_BEFORE = "perplexity_before"
STOP_RATE = "finetuned: stop rate"
NOT_EVALUATED = "evaluate it on stage 5"
BY_STAGE5 = "stage 5's evaluation"
BY_THE_RUN = "the run, at its end"  # training's own measure: every held-out recipe, greedy stop rate
# Values a setting can never take, whatever its type allows; a variant outside them would only fail in the job.
SETTING_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "n_recipes": (2, None, "at least 2 recipes: one to train on, one to validate"),
    "test_size": (0.0, 1.0, "a share between 0 and 1 (0.1 holds out a tenth)"),
    "max_length": (8, None, "at least 8 tokens"),
    "rank": (1, None, "a rank of at least 1"),
    "alpha": (1, None, "an alpha of at least 1"),
    "dropout": (0.0, 0.99, "a dropout between 0 and 0.99"),
    "learning_rate": (1e-9, 1.0, "a learning rate above 0 and at most 1"),
    "batch_size": (1, None, "at least 1 recipe per step"),
    "epochs": (0.01, None, "more than 0 epochs"),
    "eval_every": (1, None, "at least 1 step between validations"),
}
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
NONE_WORDS = {"", "none", "default"}


class VariantRefused(LabError):
    """The variant asked for cannot be made: the message says why, in words."""


@dataclass(frozen=True)
class SettingInfo:
    """One setting a run can be changed in, as the picker offers it."""

    name: str = field(metadata={"help": "the TrainSettings field"})
    help: str = field(metadata={"help": "its help text, from the field's metadata"})
    kind: str = field(metadata={"help": "int, float, bool, str or list (of str)"})
    optional: bool = field(metadata={"help": "None is allowed (it means the engine's own choice)"})
    default: Any = field(default=None, metadata={"help": "the class's default value"})


# -- the settings and their help ------------------------------------------------------------------
def _kind(hint: Any) -> tuple[str, bool]:
    """``("int", False)`` for ``int``, ``("str", True)`` for ``str | None``, ``("list", True)`` for a list."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        kind, _ = _kind(inner[0]) if len(inner) == 1 else ("str", False)
        return kind, type(None) in args
    if hint is bool:
        return "bool", False
    if hint in (int, float, str):
        return hint.__name__, False
    if hint is list or typing.get_origin(hint) is list:
        return "list", False
    return "str", False


def setting_infos(settings_class: type) -> dict[str, SettingInfo]:
    """Every field of ``settings_class`` (a ``TrainSettings``) by name, with its help text and type, in order."""
    hints = typing.get_type_hints(settings_class)
    infos = {}
    for item in fields(settings_class):
        kind, optional = _kind(hints.get(item.name, str))
        if item.default is not MISSING:
            default = item.default
        elif item.default_factory is not MISSING:
            default = item.default_factory()
        else:
            default = None
        infos[item.name] = SettingInfo(item.name, str(item.metadata.get("help", "")), kind, optional, default)
    return infos


def run_label(run: dict) -> str:
    """How a run is named in tables and legends: its name (or "run") and the end of its id, which is unique."""
    return f"{run.get('name') or 'run'} · {str(run['id'])[-6:]}"


def show_value(value: Any) -> str:
    """A setting's value as a person reads it: ``None`` as "default", a list as "q_proj, v_proj"."""
    if value is None:
        return "default"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, dict):  # own_dataset: the file is what tells runs apart
        return str(value.get("path") or value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting_value(run: dict, name: str, infos: dict[str, SettingInfo]) -> Any:
    """The run's value of ``name``; a field its config lacks (added since the run) had the class's default."""
    config = run.get("config") or {}
    if name in config:
        return config[name]
    return infos[name].default if name in infos else None


def settings_diff(runs: list[dict], settings_class: type | None) -> dict:
    """What differs between ``runs``, setting by setting.

    Returns ``{"differ": [{"setting", <run label>: value, ..., "what it is"}], "same": [names]}``: one
    row per setting whose value is not the same in every run (values as ``show_value`` writes them),
    and the names of the settings that are. Fields of ``settings_class`` come first, in its order,
    then ``EXTRA_SETTINGS`` (your code or the reference; your own data). Without a ``settings_class``
    (the training engine is not installed) the settings are the keys of the runs' configs, with no help.
    """
    infos = setting_infos(settings_class) if settings_class else {}
    keys = infos or {key: None for run in runs for key in (run.get("config") or {}) if key not in EXTRA_SETTINGS}
    helps = {**{name: infos[name].help if name in infos else "" for name in keys}, **EXTRA_SETTINGS}
    differ, same = [], []
    for name in helps:
        values = [setting_value(run, name, infos) for run in runs]
        if name in EXTRA_SETTINGS:
            values = [bool(value) if name == "reference" else value for value in values]
        shown = [show_value(value) for value in values]
        if len(set(shown)) > 1:
            differ.append({"setting": name, **{run_label(run): text for run, text in zip(runs, shown)},
                           "what it is": helps[name]})
        elif name in keys:
            same.append(name)
    return {"differ": differ, "same": same}


# -- losses, and the table of results -------------------------------------------------------------------
def _split(metric: dict) -> str:
    return "validation" if metric["split"] in ("eval", "validation") else metric["split"]


def loss_overlay_rows(runs: list[dict], metrics: dict[str, list[dict]]) -> list[dict]:
    """Every run's losses for one chart: ``{"run", "step", "loss", "split"}``, ``run`` as ``run_label``.

    Args:
        metrics: each run's metrics by run id (``store.metrics(id)``); a run missing here has none.
    """
    return [{"run": run_label(run), "step": int(metric["step"]), "loss": float(metric["loss"]),
             "split": _split(metric)}
            for run in runs for metric in metrics.get(run["id"], [])
            if metric.get("loss") is not None and _split(metric) in ("train", "validation")]


def newest_evaluations(evaluations: list[dict]) -> dict[tuple[str, str], float | None]:
    """Stage 5's evaluations by ``(run id, name)``, the newest of each (a run evaluated twice shows the last)."""
    newest: dict[tuple[str, str], float | None] = {}
    for evaluation in evaluations:  # oldest first
        if evaluation.get("run_id"):
            newest[(evaluation["run_id"], evaluation["name"])] = evaluation["value"]
    return newest


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def comparison_rows(runs: list[dict], metrics: dict[str, list[dict]], evaluations: list[dict]) -> list[dict]:
    """One row per run: how it ended, and its perplexity and stop rate (``None`` where nothing was measured).

    Columns: run, status, recipes used (train and validation, as the run counted them: fewer than its
    ``n_recipes`` when the data held fewer), steps, final train loss, final validation loss, perplexity after,
    stop rate (a share, 0 to 1), tokens per second, training time (s: the run's own count, else first to last
    logged step), measured by. Perplexity and stop rate are stage 5's evaluation of the run when there is one
    (``BY_STAGE5``), else what the run measured at its end (``BY_THE_RUN``: summary ``heldout_perplexity``
    and ``stop_rate``), never a mix of the two in one row; else ``NOT_EVALUATED``.
    """
    measured = newest_evaluations(evaluations)
    rows = []
    for run in runs:
        logged = metrics.get(run["id"], [])
        train = [m for m in logged if _split(m) == "train" and m.get("loss") is not None]
        validation = [m for m in logged if _split(m) == "validation" and m.get("loss") is not None]
        speeds = [m["tokens_per_s"] for m in logged if m.get("tokens_per_s")]
        times = [m["t"] for m in logged if m.get("t") is not None]
        summary = run.get("summary") or {}
        after = _finite(measured.get((run["id"], PERPLEXITY_AFTER)))
        stop = _finite(measured.get((run["id"], STOP_RATE)))
        by = BY_STAGE5
        if after is None and stop is None:
            after, stop, by = _finite(summary.get("heldout_perplexity")), _finite(summary.get("stop_rate")), BY_THE_RUN
        if after is None and stop is None:
            by = NOT_EVALUATED
        seconds = _finite(summary.get("seconds"))
        rows.append({
            "run": run_label(run), "status": run["status"], "recipes used": recipes_used(run),
            "steps": max((int(m["step"]) for m in logged), default=int(summary.get("step") or 0)),
            "final train loss": train[-1]["loss"] if train else _finite(summary.get("train_loss")),
            "final validation loss": validation[-1]["loss"] if validation else _finite(summary.get("eval_loss")),
            "perplexity after": after, "stop rate": stop,
            "tokens per second": speeds[-1] if speeds else _finite(summary.get("tokens_per_s")),
            "training time (s)": round(seconds if seconds is not None else max(times) - min(times), 1)
            if seconds is not None or len(times) > 1 else None,
            "measured by": by,
        })
    return rows


def quality_rows(rows: list[dict]) -> list[dict]:
    """``comparison_rows`` as bars: ``{"run", "measure", "value"}`` for perplexity after and stop rate (%).

    Runs stage 5 has not evaluated have no bars; the page names them instead.
    """
    bars = []
    for row in rows:
        if row["perplexity after"] is not None:
            bars.append({"run": row["run"], "measure": "perplexity after (lower is better)",
                         "value": round(row["perplexity after"], 2)})
        if row["stop rate"] is not None:
            bars.append({"run": row["run"], "measure": "stop rate, % (higher is better)",
                         "value": round(100 * row["stop rate"], 1)})
    return bars


def run_choice_label(run: dict) -> str:
    """A run in the picker: its label and how it stands ("finished", "failed", "running", ...)."""
    return f"{run_label(run)} ({run['status']})"


# -- one setting changed --------------------------------------------------------------------------------
def parse_value(info: SettingInfo, value: Any) -> Any:
    """``value`` (a typed value, or the text a person typed) as the type of the setting ``info``.

    Raises ``VariantRefused`` when the type cannot hold it: "rank is a whole number: '2.5' is not".
    """
    name = info.name
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in NONE_WORDS:
            if info.optional:
                return None
            raise VariantRefused(f"{name} needs a value: type a {_kind_words(info.kind)}.")
        value = text
    if value is None:
        if info.optional:
            return None
        raise VariantRefused(f"{name} needs a value: type a {_kind_words(info.kind)}.")
    if info.kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE_WORDS | FALSE_WORDS:
            return str(value).lower() in TRUE_WORDS
        raise VariantRefused(f"{name} is yes or no (true/false): {value!r} is neither.")
    if info.kind == "int":
        if isinstance(value, bool):
            raise VariantRefused(f"{name} is a whole number: {value!r} is not.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise VariantRefused(f"{name} is a whole number: {value!r} is not.") from None
        if not math.isfinite(number) or number != int(number):
            raise VariantRefused(f"{name} is a whole number: {value!r} is not.")
        return _in_range(name, int(number))
    if info.kind == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise VariantRefused(f"{name} is a number (such as 0.0002 or 2e-4): {value!r} is not.") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise VariantRefused(f"{name} is a number (such as 0.0002 or 2e-4): {value!r} is not.")
        return _in_range(name, number)
    if info.kind == "list":
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        items = [str(item).strip() for item in items if str(item).strip()]
        if not items:
            raise VariantRefused(f"{name} needs at least one name, separated by commas (q_proj, v_proj).")
        return items
    return str(value)


def _kind_words(kind: str) -> str:
    return {"int": "whole number", "float": "number", "bool": "yes or no", "list": "comma-separated list"}.get(
        kind, "text")


def _in_range(name: str, number: float) -> float:
    low, high, words = SETTING_RANGES.get(name, (None, None, ""))
    if (low is not None and number < low) or (high is not None and number > high):
        raise VariantRefused(f"{name} must be {words}: {number:g} is not.")
    return number


def variant_settings(run: dict, setting: str, value: Any, settings_class: type):
    """The settings ``run`` was started with, ``setting`` changed to ``value``: a ``settings_class`` instance.

    ``value`` may be typed or the text a person typed ("16", "2e-4", "yes", "q_proj, v_proj", "none").

    Raises ``VariantRefused``, in words, when ``setting`` is not one of the class's fields, the value
    does not fit its type or range, or it is the value the run already had.
    """
    infos = setting_infos(settings_class)
    if setting not in infos:
        raise VariantRefused(f"{setting!r} is not a training setting; the settings are: {', '.join(infos)}.")
    new = parse_value(infos[setting], value)
    if setting == "method":  # a word the type allows, but only the engine's methods train
        from lessons.engine.methods import check_method

        try:
            check_method(new)
        except ValueError as unknown:
            raise VariantRefused(str(unknown)) from None
    current = setting_value(run, setting, infos)
    if show_value(new) == show_value(current) and (new is None) == (current is None):
        raise VariantRefused(f"Run {run_label(run)} already has {setting} = {show_value(current)}: "
                             "choose a different value, or the variant would be the same run again.")
    config = run.get("config") or {}
    if setting == "epochs" and int(config.get("max_steps") or -1) > 0:
        raise VariantRefused(f"Run {run_label(run)} stops after max_steps = {config['max_steps']} steps, whatever "
                             "the epochs say: change max_steps to -1 (run the epochs) instead, then the epochs.")
    if setting in ("n_recipes", "source") and config.get("own_dataset"):
        raise VariantRefused(f"Run {run_label(run)} trained on your own file, so {setting} does not change what it "
                             "learns from: start a run on the recipes to vary it.")
    known = set(infos)
    values = {key: item for key, item in config.items() if key in known}
    values[setting] = new
    if isinstance(values.get("target_modules"), tuple):
        values["target_modules"] = list(values["target_modules"])
    return settings_class(**values)


def variant_name(run: dict, setting: str, value: Any) -> str:
    """"<run name> · rank 16": the variant named after the run it copies and the one thing changed."""
    base = run.get("name") or f"run {str(run['id'])[-6:]}"
    return f"{base} · {setting.replace('_', ' ')} {show_value(value)}"


def queue_variant(run: dict, setting: str, value: Any, *, store: Store, reference: bool,
                  settings_class: type | None = None) -> str:
    """Queue ``run`` again with one setting changed, through ``jobs.start_job``; the new run's id.

    A run trained on the learner's own file (stage 7) trains on the same file again.

    Args:
        reference: train with the reference solutions (demo mode) instead of the learner's files.
        settings_class: the trainer's ``TrainSettings``; default ``jobs.trainer().TrainSettings``.
    """
    from lessons.engine import jobs

    settings_class = settings_class or jobs.trainer().TrainSettings
    settings = variant_settings(run, setting, value, settings_class)
    changed = asdict(settings)[setting]
    return jobs.start_job(settings, reference=reference, store=store, name=variant_name(run, setting, changed),
                          own_dataset=(run.get("config") or {}).get("own_dataset") or None)
