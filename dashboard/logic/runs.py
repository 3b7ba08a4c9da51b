"""The finished training runs a page can use: where each saved its adapter, which ones can be chosen.

Read from the store only (no model is loaded here, no Streamlit): the pages
list the choices, and a task receives a ``model_spec`` that the worker loads
with ``lessons.engine.trained`` (``dashboard.tasks.shared.model_for``).
"""
from __future__ import annotations

from pathlib import Path

from lessons.engine.errors import LabError
from lessons.engine.store import Store

ADAPTER_CONFIG = "adapter_config.json"  # what peft's save_pretrained writes: a folder holding it is an adapter


def adapter_dir(run: dict) -> Path | None:
    """Where a finished run saved its LoRA adapter (``adapter_config.json`` inside), or None.

    Looks, in order, at the folder the run's summary names, ``<checkpoint_dir>/adapter`` and
    ``<run folder>/adapter`` (``lessons.engine.jobs.run_dir``).
    """
    from lessons.engine import jobs

    summary = run.get("summary") or {}
    candidates = [summary.get(key) for key in ("adapter", "adapter_path", "adapter_dir")]
    if run.get("checkpoint_dir"):
        candidates.append(Path(run["checkpoint_dir"]) / "adapter")
    candidates.append(jobs.run_dir(run["id"]) / "adapter")
    for candidate in candidates:
        if candidate and (Path(candidate) / ADAPTER_CONFIG).exists():
            return Path(candidate)
    return None


def finetuned_choices(store: Store) -> list[str]:
    """The ids of finished training runs that saved an adapter, oldest first."""
    return [run["id"] for run in store.runs("train") if run["status"] == "finished" and adapter_dir(run)]


def model_spec(run_id: str | None, store: Store) -> dict | None:
    """What a task needs to load a model in the worker: None for the base model, else a run's adapter.

    ``{"run": ID, "adapter": FOLDER, "model": BASE}``, with ``model`` None for the default base model;
    a ``LabError`` when ``run_id`` is not in ``store`` or saved no adapter.
    """
    if run_id is None:
        return None
    run = store.run(run_id)
    folder = adapter_dir(run) if run else None
    if folder is None:
        raise LabError(f"run {run_id} has no saved adapter (did it finish?)")
    return {"run": run_id, "adapter": str(folder), "model": (run.get("config") or {}).get("model") or None}


def training_settings_class():
    """The engine's ``TrainSettings`` (what a training form fills in), imported only when a page asks for it.

    ``lessons.engine.training`` imports transformers and torch, which the dashboard's own process otherwise never
    loads; an ``ImportError`` means the training engine is missing from this copy.
    """
    from lessons.engine.training import TrainSettings

    return TrainSettings
