"""Stage 4B results: a LoRA training form, and the background run it starts, watched live.

The form's trainable-parameter count comes from the learner's own
``attention_modules``, ``make_lora_config``, ``apply_lora`` and
``trainable_parameters``, applied in the worker process to a *meta-device*
copy of the model (its shapes without its numbers: instant, and no memory;
``dashboard/tasks/stage4b.py``). Start queues a run with
``lessons.engine.jobs.start_job``; training happens in a separate process that
writes its metrics to the store, and this page only reads them: a progress bar
with the ETA, the live training and validation loss, tokens per second, and
Cancel. Reloading the page re-attaches to the newest running job.
"""
from __future__ import annotations

from dataclasses import fields

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.bench import bench_charts, bench_rows  # noqa: F401 - bench_rows: importable here as before
from dashboard.logic.charts import loss_chart, runs_loss_chart
from dashboard.logic.kernel import LessonRef
from dashboard.logic.runs import training_settings_class
from dashboard.results import stage4b_methods
from dashboard.tasks import stage4b as tasks
from dashboard.ui import demo_mode, friendly, open_results_store, run_task
from lessons.engine import job_queue, jobs
from lessons.engine.errors import LabError
from lessons.engine.paths import learner_id
from lessons.engine.store import Store

RANKS = [1, 2, 4, 8, 16, 32, 64]
LEARNING_RATES = [5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3]
POLL_SECONDS = 2.0  # how often the live view reads the store while a run is going


def draw(ref: LessonRef, store: Store) -> None:
    try:
        settings_class = training_settings_class()
    except ImportError as error:
        st.warning(f"The training engine is not available in this copy ({error}).")
        return
    defaults = settings_class()

    st.markdown("#### Train a LoRA adapter")
    attention, linear = [], []
    with friendly("finding the attention layers with attention_modules"):
        attention, linear = run_task(tasks.targets, ref, doing="finding the attention layers with attention_modules")
    left, middle, right = st.columns(3)
    rank = left.select_slider("LoRA rank r", RANKS, value=getattr(defaults, "rank", 8), key="stage4b_rank")
    alpha = left.number_input("alpha (scaling = alpha / r)", 1, 256, int(getattr(defaults, "alpha", 16)),
                              key="stage4b_alpha")
    targets = middle.multiselect("Target modules", linear or attention, default=[t for t in attention if t in
                                                                                  (linear or attention)],
                                 key="stage4b_targets", help="attention_modules(model) chose the default.")
    learning_rate = middle.select_slider("Learning rate", LEARNING_RATES,
                                         value=min(LEARNING_RATES, key=lambda lr: abs(lr - getattr(
                                             defaults, "learning_rate", 2e-4))),
                                         key="stage4b_learning_rate", format_func=lambda lr: f"{lr:g}")
    epochs = right.number_input("Epochs", 1, 10, int(max(1, getattr(defaults, "epochs", 1))), key="stage4b_epochs")
    sizes = sorted({40, 100, 200, 400, 1000, 2000, 3000, int(getattr(defaults, "n_recipes", 400))})
    n_recipes = right.select_slider("Data size (recipes)", sizes, value=int(getattr(defaults, "n_recipes", 400)),
                                    key="stage4b_n_recipes")
    with st.expander("More settings"):
        columns = st.columns(4)
        max_steps = columns[0].number_input("Max steps (0 = all epochs)", 0, 100_000,
                                            max(0, int(getattr(defaults, "max_steps", 0) or 0)),
                                            key="stage4b_max_steps")
        batch_size = columns[1].select_slider("Batch size", [1, 2, 4, 8, 16],
                                              value=int(getattr(defaults, "batch_size", 4)), key="stage4b_batch_size")
        max_length = columns[2].select_slider("Max length", sorted({64, 128, 256, 512, 768,
                                                                    int(getattr(defaults, "max_length", 768))}),
                                              value=int(getattr(defaults, "max_length", 768)), key="stage4b_max_length",
                                              help="768 keeps whole recipes with their [END]: batches of "
                                                   "similar lengths are padded only to their longest recipe, "
                                                   "so the unused length costs nothing")
        eval_every = columns[3].number_input("Validate every (steps)", 1, 10_000,
                                             int(getattr(defaults, "eval_every", 20) or 20), key="stage4b_eval_every")

    dropout = float(getattr(defaults, "dropout", 0.0))
    if targets:
        with friendly("counting trainable parameters with make_lora_config, apply_lora and trainable_parameters"):
            counts = run_task(tasks.lora_counts, ref, int(rank), int(alpha), list(targets), dropout,
                              doing="counting trainable parameters")
            st.metric("Trainable parameters with these settings", f"{counts['trainable']:,}",
                      help=stage_data.lora_share(counts["trainable"], counts["total"]))
            st.caption(f"{stage_data.lora_share(counts['trainable'], counts['total'])} of the model: "
                       "everything else stays frozen.")
    else:
        st.warning("Choose at least one target module.")

    values = {"rank": int(rank), "alpha": int(alpha), "target_modules": list(targets), "dropout": dropout,
              "learning_rate": float(learning_rate), "epochs": float(epochs), "n_recipes": int(n_recipes),
              "max_steps": int(max_steps) if max_steps else -1,  # -1: run the epochs (TrainSettings' own default)
              "batch_size": int(batch_size), "max_length": int(max_length), "eval_every": int(eval_every)}
    known = {field.name for field in fields(settings_class)}
    active = jobs.newest_active_run(store)
    start = st.button(START_BUTTONS["stage4b"], key="stage4b_start", type="primary",
                      disabled=active is not None or not targets,
                      help="One run at a time: wait for the running one, or cancel it." if active else None)
    if start:
        with friendly("starting the training run"):
            settings = settings_class(**{key: value for key, value in values.items() if key in known})
            run_id = jobs.start_job(settings, reference=demo_mode(), store=store)
            st.session_state["stage4b_run"] = run_id
            st.toast(f"Training run {run_id} started.")
            st.rerun()

    watch(store, active)
    if "method" in known:  # a trainer that knows full fine-tuning and QLoRA
        stage4b_methods.draw(store, settings_class(**{key: value for key, value in values.items() if key in known}),
                             busy=active is not None)
    draw_history(store)
    draw_bench(store)


def draw_bench(store: Store) -> None:
    """The benchmark's result, if ``python -m lessons bench`` has run: why the lab trains faster, and stops."""
    st.markdown("#### Speed: the original recipe against LoRA Kitchen's")
    result = store.result("stage4b", "bench")
    if not result and store.learner != learner_id():
        # The bench measures the machine, not a learner: demo mode shows the one `python -m lessons bench` saved.
        with Store() as own:
            result = own.result("stage4b", "bench")
    if not result:
        st.info("No benchmark yet. In a terminal: `.venv/bin/python -m lessons bench --quick` (about 13 minutes on a "
                "2-core CPU) trains the original assignment's recipe and LoRA Kitchen's on the same recipes "
                "and draws the difference here.")
        return
    st.caption("Padding is compute spent on nothing: a 256-token batch of recipes is about a quarter filler, "
               "and cutting at 256 loses the [END] of a third of them. Batches of recipes of similar length, "
               "padded only to their longest, remove most of the filler, bf16 does the arithmetic in half "
               "the bits, and the loss over the 49,153-token vocabulary is computed a slice at a time. "
               f"Measured on {result.get('device', 'this machine')}.")
    with friendly("drawing the benchmark"):
        for chart in bench_charts(result):
            st.altair_chart(chart, width="stretch")
        if result.get("table"):
            st.code(result["table"], language="text")


# The button that starts a run on each page that shows one with ``watch``, named as the page names it.
START_BUTTONS = {"stage4b": "▶ Start training", "stage7": "▶ Train on this file"}


def watch(store: Store, active: dict | None, *, prefix: str = "stage4b", which=lambda run: True) -> None:
    """The live view: polls the store every few seconds while a run is queued or running.

    Args:
        prefix: the page's key prefix (its widgets' keys, and ``<prefix>_run``, the run it started).
        which: the runs this page shows when none is running (default: all).
    """
    chosen = st.session_state.get(f"{prefix}_run")
    run_id = active["id"] if active else chosen  # a running run is always shown: it is why Start is closed
    if run_id is None:
        runs = [run for run in store.runs("train") if which(run)]
        run_id = runs[-1]["id"] if runs else None
    if run_id is None:
        button = f"“{START_BUTTONS[prefix]}”" if prefix in START_BUTTONS else "the ▶ button above"
        st.info(f"No training run yet: choose the settings and press {button}. Training runs in the background; "
                "you can close this page and come back.")
        return

    @st.fragment(run_every=POLL_SECONDS if active else None)
    def live() -> None:
        with open_results_store() as fresh:
            status = jobs.job_status(run_id, store=fresh)
            metrics = fresh.metrics(run_id)
        draw_run(status, metrics, prefix=prefix)
        if active and status["status"] not in jobs.ACTIVE:
            st.rerun(scope="app")  # the run ended: redraw the whole page (Start opens again)

    live()


def draw_run(status: dict, metrics: list[dict], *, prefix: str = "stage4b") -> None:
    run_id = status["id"]
    label = {"queued": "⏳ queued", "running": "🏃 running", "finished": "✅ finished", "failed": "❌ failed",
             "cancelled": "⏹ cancelled"}.get(status["status"], status["status"])
    st.markdown(f"#### Run `{run_id}` — {label}")
    if status.get("queue_view") and (status["status"] == "queued" or status["queue_view"].get("backend") == "slurm"):
        # Where the job waits: its place in this server's line, or what Slurm says of it.
        st.info(("⏳ " if status["status"] == "queued" else "") + job_queue.describe(status["queue_view"]))
    if status["status"] in jobs.ACTIVE:
        if status["status"] == "running":
            total = status.get("total_steps")
            text = f"step {status['step']}" + (f" of {total}" if total else "") + \
                f" · about {stage_data.format_eta(status.get('eta_s'))} left"
            st.progress(float(status.get("fraction") or 0.0), text=text)
        if status.get("cancel_requested"):
            st.caption("Cancelling: the run stops after its current step and keeps its last checkpoint.")
        elif st.button("⏹ Cancel", key=f"{prefix}_cancel_{run_id}"):
            with open_results_store() as store:
                jobs.cancel_job(run_id, store=store)
            st.rerun(scope="fragment")
    elif status["status"] in ("failed", "cancelled"):
        (st.error if status["status"] == "failed" else st.warning)(status.get("reason") or status["status"])
        if st.button("↻ Resume from the last checkpoint", key=f"{prefix}_resume_{run_id}"):
            try:
                with open_results_store() as store:
                    jobs.resume_job(run_id, store=store)
                st.rerun(scope="app")
            except LabError as error:
                st.error(str(error))
    columns = st.columns(4)
    columns[0].metric("Step", f"{status['step']}" + (f"/{status['total_steps']}" if status.get("total_steps") else ""))
    columns[1].metric("Training loss", f"{status['train_loss']:.3f}" if status.get("train_loss") is not None else "–")
    columns[2].metric("Validation loss", f"{status['eval_loss']:.3f}" if status.get("eval_loss") is not None else "–")
    columns[3].metric("Tokens per second", f"{status['tokens_per_s']:,.0f}" if status.get("tokens_per_s") else "–")
    if metrics:
        st.altair_chart(loss_chart(metrics), width="stretch")
    else:
        st.caption("Waiting in line: training starts when a slot is free, and this page follows it."
                   if status["status"] == "queued" else
                   "Waiting for the first step (loading the model and data takes a little while) …")
    with st.expander("The job's log"):
        st.code(jobs.log_tail(run_id, 30) or "(empty)", language="text")


def draw_history(store: Store) -> None:
    runs = store.runs("train")
    if len(runs) < 1:
        return
    st.markdown("#### Your runs")
    st.dataframe(stage_data.run_rows(runs), hide_index=True)
    rows = stage_data.history_loss_rows(runs, {run["id"]: store.metrics(run["id"]) for run in runs})
    if len(runs) > 1 and rows:
        st.altair_chart(runs_loss_chart(rows, title="All your runs (dashed: validation)"), width="stretch")
