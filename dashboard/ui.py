"""Drawing pieces every page shares: the stage page, error boxes, running a task in the worker.

Logic lives in ``dashboard.logic`` (tested without Streamlit); this module only
draws it, and keeps what lives in the session (demo mode) and Streamlit's caches.
Learner code never runs in this process: ``run_task`` sends it to the worker
process (``dashboard.logic.kernel``), which holds the models. Session
keys that belong to one stage page carry its prefix (``stage3_...``); the
shared ones (``demo``) are set once in ``app.py``.
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import streamlit as st

from lessons.engine.limits import LIMITS
from lessons.engine.paths import learner_id, relative_to_project
from lessons.engine.progress import PASSED, stage_progress
from lessons.engine.stages import Stage, stage as find_stage
from lessons.engine.store import Store

from dashboard.logic import lesson as lesson_logic
from dashboard.logic import runs
from dashboard.logic.friendly import FriendlyError, friendly_error
from dashboard.logic.kernel import LessonRef, TaskFailed, lesson_ref, shared_kernel
from dashboard.logic.questions import questions_for
# Logic the pages import from here (it lives in dashboard.logic); tests set ``ui.DEMO_LEARNER`` and
# ``ui.lesson_file``, which ``open_results_store`` and ``earlier_ref`` below read from this module.
from dashboard.logic.modes import DEMO_LEARNER, demo_in_address, demo_requested, lesson_file  # noqa: F401
from dashboard.logic.runs import adapter_dir, finetuned_choices  # noqa: F401

DEMO_KEY = "demo"


# -- modes and the store ------------------------------------------------------------------
def demo_mode() -> bool:
    return bool(st.session_state.get(DEMO_KEY, False))


def open_store() -> Store:
    """The learner's store, opened for this script run (SQLite connections are cheap)."""
    return Store()


def open_results_store() -> Store:
    """Where a results area reads and writes: the learner's store, or in demo mode the "demo" learner's.

    ``python -m lessons pipeline --reference`` saves its results for learner "demo" too, so demo mode
    shows them; and nothing made with the reference solutions ever counts as the learner's work.
    """
    return Store(learner=DEMO_LEARNER) if demo_mode() else Store()


# -- the lab report ---------------------------------------------------------------------------
def lab_report_html() -> str:
    """The learner's lab report (``dashboard.logic.report``), read from their own store only.

    Called by the download button when it is pressed, on a thread of its own: so it opens its own
    store and never draws.
    """
    from dashboard.logic.report import build_report_html

    try:
        tokenizer = base_tokenizer()
    except Exception:  # noqa: BLE001 - the report says the tokenization examples are missing
        tokenizer = None
    with Store() as store:
        return build_report_html(store, tokenizer=tokenizer)


def report_download_button(key: str) -> None:
    """⬇ Export my lab report: one self-contained HTML file, built when pressed (never on every rerun)."""
    st.download_button("⬇ Export my lab report (HTML)", data=lab_report_html,
                       file_name=f"lora-kitchen-report-{learner_id()}.html", mime="text/html", key=key,
                       on_click="ignore",
                       help="Every deliverable in one file you can hand in: progress, the before outputs, data "
                            "cleaning, tokenization, loss curves, perplexity, generations, sampling, your answers. "
                            "Parts not done yet say so.")


# -- errors, told kindly ---------------------------------------------------------------------
def show_error(problem: FriendlyError) -> None:
    st.error(problem.message, icon="🛑")
    if problem.details:
        with st.expander("The full traceback (for the curious)"):
            st.code(problem.details, language="text")


class LearnerCodeStopped(Exception):
    """Raised by ``run_task`` after it drew the error box: the ``friendly`` block around it ends quietly."""


@contextmanager
def friendly(doing: str = "") -> Iterator[None]:
    """Draw inside; an exception becomes an error box (with file and line), never a crashed page.

    Streamlit's own control flow (``st.stop``, ``st.rerun``) derives from BaseException and passes through.
    """
    try:
        yield
    except LearnerCodeStopped:
        pass  # run_task has shown it already
    except Exception as error:  # noqa: BLE001 - whatever learner code raises is shown, not crashed on
        show_error(friendly_error(error, doing=doing))


# Time limits for learner code (lessons/engine/limits.py says why each is what it is); past one, the worker running
# it is stopped (dashboard.logic.kernel).
QUICK_LIMIT_S = LIMITS.page_quick_s  # formatting, a split, tokenizing, sampling arithmetic
LOAD_LIMIT_S = LIMITS.page_load_s    # loading the model, reading 3,129 recipes, generating a few recipes
LONG_LIMIT_S = LIMITS.page_long_s    # stage 4A's training step, stage 5's evaluation, a sampling sweep

RESTART_COUNT_KEY = "_worker_restart_buttons"  # per script run: each restart button of a page gets its own key


def restart_worker() -> None:
    """Stop the worker process (whatever it is doing) and start a fresh one; the page then reruns."""
    shared_kernel().restart()
    st.toast("The worker was restarted: your code runs in a fresh process.", icon="🔄")


def restart_button() -> None:
    number = st.session_state.get(RESTART_COUNT_KEY, 0) + 1
    st.session_state[RESTART_COUNT_KEY] = number
    st.button("🔄 Restart the worker", key=f"worker_restart_{number}", on_click=restart_worker,
              help="Stops the process that runs your code (and what it loaded) and starts a fresh one.")


def run_task(task: Callable[..., Any], *args: Any, timeout_s: float = QUICK_LIMIT_S, doing: str = "",
             **kwargs: Any) -> Any:
    """``task(*args, **kwargs)`` in the worker process, with a time limit; what goes wrong becomes an error box.

    The ONE way the results areas run learner code: ``task`` is a function of ``dashboard/tasks/`` whose
    arguments and answer are plain data, sent to the worker by ``dashboard.logic.kernel``. When it raises,
    runs past ``timeout_s`` (the worker is killed), or the worker ends (``os._exit``, a crash), the error
    box says so with the learner's file and line, and for a stopped or ended worker offers to restart
    it. Then it raises ``LearnerCodeStopped``, which the surrounding ``with friendly(...)`` block (or the
    results area's own) ends quietly: the rest of that block is skipped, the rest of the page still draws.

    Args:
        timeout_s: seconds to wait; default ``QUICK_LIMIT_S``.
        doing: what the page was doing, for the message (``"tokenizing with tokenize_function"``).
    """
    try:
        return shared_kernel().call(task, *args, timeout_s=timeout_s, doing=doing, **kwargs)
    except TaskFailed as failed:
        show_error(failed.problem)
        if failed.offers_restart:
            restart_button()
        raise LearnerCodeStopped(failed.problem.headline) from None


def earlier_ref(key: str) -> LessonRef:
    """A stage's file as tasks receive it: the reference in demo mode, else the learner's (``LabError`` if missing).

    Never imported here: the worker imports it. An earlier stage's page is open only when it passed, so the
    learner's own earlier code feeds the later pages.
    """
    reference = demo_mode()
    return lesson_ref(key, lesson_file(key, reference=reference), reference=reference)


def stage_ref(key: str) -> LessonRef | None:
    """The stage's file for its results area; None (with an error box drawn) when it is missing."""
    try:
        return earlier_ref(key)
    except Exception as error:  # noqa: BLE001
        show_error(friendly_error(error, doing=f"finding {'the reference' if demo_mode() else 'your'} {key} file"))
        return None


@st.cache_resource(show_spinner="Loading the tokenizer …", max_entries=1)
def base_tokenizer(name: str | None = None):
    """The base model's tokenizer, for the lab report (engine code, no learner code). Never mutate it."""
    from transformers import AutoTokenizer

    from lessons.engine.assets import resolve_model_source

    return AutoTokenizer.from_pretrained(resolve_model_source(name))


def model_spec(run_id: str | None) -> dict | None:
    """``dashboard.logic.runs.model_spec`` read from the store this mode shows (the learner's, or demo mode's)."""
    if run_id is None:
        return None
    with open_results_store() as store:
        return runs.model_spec(run_id, store)


# -- the stage page ----------------------------------------------------------------------------------
def stage_page(key: str) -> None:
    """One stage's page: lesson, checks, results, hints and questions (or the lock that closes it)."""
    stage = find_stage(key)
    store = open_store()
    st.session_state[RESTART_COUNT_KEY] = 0
    st.title(f"Stage {stage.label} — {stage.title}")
    if demo_mode():
        st.info("Demo mode: every page is open and the results come from the reference solutions.", icon="🎓")
    lock = lesson_logic.lock_for(store, stage, demo=demo_mode())
    if lock is not None:
        draw_lock(lock)
        return
    draw_lesson(stage, store)
    draw_checks(stage, store)
    draw_results(stage, store)
    draw_hints(stage, store)
    draw_questions(stage, store)


def draw_lock(lock: lesson_logic.Lock) -> None:
    st.warning(f"This page is locked. {lock.message}", icon="🔒")
    if lock.failing:
        st.markdown("Checks still to pass:\n" + "\n".join(f"- {title}" for title in lock.failing))
    st.markdown("Open it by making every check of that stage pass, then run:")
    st.code(lock.command, language="bash")
    st.caption("Instructors: demo mode (sidebar, or `LAB_DEMO=1`) opens every page with the reference solutions.")


def draw_lesson(stage: Stage, store: Store) -> None:
    text = lesson_logic.lesson_text(stage)
    passed = stage_progress(store, stage).status == PASSED
    with st.expander("📖 The lesson", expanded=not passed):
        if not text.markdown:
            st.warning(f"No lesson text found: {relative_to_project(stage.learner_file)} is missing. "
                       "Run `python -m lessons generate`.")
        else:
            st.markdown(text.markdown)
            st.caption(f"From {text.path}. Your file to complete: {relative_to_project(stage.learner_file)}")


def draw_checks(stage: Stage, store: Store) -> None:
    if demo_mode():
        draw_demo_checks(stage)
        return
    st.subheader("Your checks")
    st.markdown(f"Complete `{relative_to_project(stage.learner_file)}`, then run the checks in a terminal "
                "from the project folder, or with the button:")
    st.code(stage.check_command, language="bash")
    output_key = f"{stage.key}_check_output"
    if st.button("▶ Run checks", key=f"{stage.key}_run_checks"):
        with st.spinner(f"Running {stage.check_command} …"):
            st.session_state[output_key] = lesson_logic.run_checks(stage)
    draw_check_output(st.session_state.get(output_key))

    progress = stage_progress(store, stage)
    summary = lesson_logic.status_summary(progress)
    (st.success if progress.status == PASSED else st.info)(summary)
    rows = lesson_logic.check_rows(progress.last_run)
    if not rows:
        rows = [lesson_logic.CheckRow(name, title, "not started", "")
                for name, title in lesson_logic.declared_checks(stage)]
    for row in rows:
        with st.container(border=True):
            st.markdown(f"{row.icon} **{row.title}** — *{row.status}*")
            if row.headline and row.status != "passed":
                st.code(row.headline, language="text", wrap_lines=True)
            if row.details:
                with st.expander("Full report"):
                    st.code(row.details, language="text", wrap_lines=True)


def draw_check_output(result: lesson_logic.CheckCommandResult | None) -> None:
    if result is not None:
        label = "timed out" if result.timed_out else ("all passed" if result.ok else "some failed")
        with st.expander(f"Output of `{result.command}` ({label})", expanded=False):
            st.code(result.output[-20_000:] or "(no output)", language="text", wrap_lines=True)


def draw_demo_checks(stage: Stage) -> None:
    """Demo mode: the stage's checks run on the reference solution; the local learner's results are not shown."""
    st.subheader("The checks (demo mode)")
    st.info("Demo mode: this area shows the checks of the stage on the reference solution, not the results of "
            "the learner using this machine. The button runs them on the reference (never counted as progress).",
            icon="🎓")
    command = f"{stage.check_command} --reference"
    st.code(command, language="bash")
    output_key = f"{stage.key}_demo_check_output"
    if st.button("▶ Run checks on the reference", key=f"{stage.key}_run_reference_checks"):
        with st.spinner(f"Running {command} …"):
            st.session_state[output_key] = lesson_logic.run_checks(stage, extra_args=["--reference"])
    draw_check_output(st.session_state.get(output_key))
    st.markdown("\n".join(f"- **{title}**" for _, title in lesson_logic.declared_checks(stage)))


def draw_results(stage: Stage, store: Store) -> None:
    st.subheader("Results of the reference solution (demo mode)" if demo_mode() else "Results of your code")
    progress = stage_progress(store, stage)
    if not (demo_mode() or progress.status == PASSED):
        st.info("Your results appear here once every check of this stage passes: the charts are drawn from "
                "your own functions.", icon="⏳")
        return
    ref = stage_ref(stage.key)
    if ref is None:
        return
    try:
        results = importlib.import_module(f"dashboard.results.{stage.key}")
    except ModuleNotFoundError:
        st.info("This stage has no results area yet.")
        return
    with friendly(f"drawing the results of {'the reference' if demo_mode() else 'your'} code"):
        with open_results_store() as results_store:
            results.draw(ref, results_store)


def draw_hints(stage: Stage, store: Store) -> None:
    st.subheader("Stuck? Hints")
    with_reference = lesson_logic.reference_available(stage)
    if not with_reference and not lesson_logic.handout_hints_available(stage):
        st.info("The reference solutions were withheld in this copy of the lab, so hints, partial and full "
                "solutions cannot be revealed here. The first hint of each TODO is the comment above it in "
                f"{relative_to_project(stage.learner_file)}; ask your instructor for more.")
        return
    exercises = lesson_logic.hint_exercises(stage)
    if not exercises:
        st.caption("This stage has no exercises.")
        return
    if with_reference:
        st.caption("Each reveal goes one step further: a hint (a question), then part of the solution, then all of "
                   "it. Try the hint first.")
    else:
        st.caption("Each reveal goes one step further: a hint (a question), then part of the solution. The full "
                   "solutions were withheld in this copy of the lab. Try the hint first.")
    revealed = lesson_logic.revealed_levels(store, stage)
    for item in exercises:
        level = revealed.get(item.key, 0)
        with st.expander(item.label, expanded=level > 0):
            for name in item.levels():
                if lesson_logic.LEVELS.index(name) + 1 <= level:
                    st.markdown({"hint": "**Hint**", "partial": "**Part of the solution**",
                                 "solution": "**The full solution**"}[name])
                    if name == "hint":
                        st.markdown(item.text(name))
                    else:
                        st.code(item.text(name), language="python")
            remaining = [name for name in item.levels() if lesson_logic.LEVELS.index(name) + 1 > level]
            if remaining:
                following = remaining[0]
                label = {"hint": "Show a hint", "partial": "Show part of the solution",
                         "solution": "Show the full solution"}[following]
                if st.button(label, key=f"{stage.key}_reveal_{item.key}_{following}"):
                    store.record_reveal(stage.key, item.key, following)
                    st.rerun()


def draw_questions(stage: Stage, store: Store) -> None:
    questions = questions_for(stage.key)
    if not questions:
        return
    st.subheader("Analysis questions")
    st.caption("Answer in a few sentences, from what you saw on this page. Your answers are saved in your lab's store.")
    answers = store.answers(stage.key)
    for number, question in enumerate(questions, start=1):
        with st.form(f"{stage.key}_form_{question.key}"):
            st.markdown(f"**{number}. {question.text}**")
            if question.look_at:
                st.caption(f"Look at: {question.look_at}")
            text = st.text_area("Your answer", value=answers.get((stage.key, question.key), ""),
                                key=f"{stage.key}_answer_{question.key}", height=110)
            if st.form_submit_button("Save answer"):
                store.save_answer(stage.key, question.key, text)
                st.success("Saved.")
