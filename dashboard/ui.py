"""Drawing pieces every page shares: the stage page, error boxes, cached models.

Logic lives in ``dashboard.logic`` (tested without Streamlit); this module only
draws it. Session keys that belong to one stage page carry its prefix
(``stage3_...``); the shared ones (``demo``) are set once in ``app.py``.
"""
from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import streamlit as st

from lessons.engine.errors import LabError
from lessons.engine.modules import load_stage_module
from lessons.engine.paths import learner_id, relative_to_project
from lessons.engine.progress import PASSED, stage_progress
from lessons.engine.stages import Stage, file_hash, stage as find_stage
from lessons.engine.store import Store

from dashboard.logic import lesson as lesson_logic
from dashboard.logic.friendly import FriendlyError, friendly_error
from dashboard.logic.guard import LearnerCodeTimeout, call_with_time_limit, function_name
from dashboard.logic.questions import questions_for

DEMO_KEY = "demo"


# -- modes and the store ------------------------------------------------------------------
def demo_requested(argv: list[str] | None = None, env: dict | None = None) -> bool:
    """Demo mode asked for on the command line (``-- --demo``) or by ``LAB_DEMO=1``."""
    argv = sys.argv if argv is None else argv
    env = os.environ if env is None else env
    return "--demo" in argv or str(env.get("LAB_DEMO", "")).lower() in {"1", "true", "yes", "on"}


def demo_mode() -> bool:
    return bool(st.session_state.get(DEMO_KEY, False))


def open_store() -> Store:
    """The learner's store, opened for this script run (SQLite connections are cheap)."""
    return Store()


DEMO_LEARNER = "demo"


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
    """Raised by ``run_learner_code`` after it drew the error box: the ``friendly`` block around it ends quietly."""


@contextmanager
def friendly(doing: str = "") -> Iterator[None]:
    """Run learner code inside; an exception becomes an error box with file and line, never a crashed page.

    Streamlit's own control flow (``st.stop``, ``st.rerun``) derives from BaseException and passes through.
    """
    try:
        yield
    except LearnerCodeStopped:
        pass  # run_learner_code has shown it already
    except Exception as error:  # noqa: BLE001 - whatever learner code raises is shown, not crashed on
        show_error(friendly_error(error, doing=doing))


# Time limits for learner calls (see dashboard.logic.guard). Generous: each is many times what a correct
# solution takes on a laptop CPU, so only a loop that never ends (or far too much work) reaches it.
QUICK_LIMIT_S = 60.0      # formatting, a split, tokenizing, sampling arithmetic: correct code takes seconds
LOAD_LIMIT_S = 300.0      # loading the model, reading 3,129 recipes, generating a few recipes
LONG_LIMIT_S = 900.0      # stage 4A's training step on the real model, stage 5's evaluation, a sampling sweep


def time_limit_error(late: LearnerCodeTimeout, *, doing: str = "") -> FriendlyError:
    """A time-limit overrun, in words: where the code was busy, and the honest truth that it still runs."""
    prefix = f"While {doing}: " if doing else ""
    if late.still_running_from_before:
        return FriendlyError(
            f"{prefix}your {late.function} is still running from an earlier try that went past its "
            f"{late.timeout_s:g} s limit, so it was not started again.",
            hint="Fix the loop that never ends, then restart the dashboard (Ctrl+C in its terminal, then start it "
                 "again): Python cannot stop a running function from outside, only the restart ends it.")
    return FriendlyError(
        f"{prefix}your {late.function} did not finish within {late.timeout_s:g} s, so this part of the page "
        "was skipped.", late.location,
        "The line shown is where it was busy when the time ran out. Is there a loop whose condition never "
        "turns false, or far more work than the task needs? Note: the function is still running inside the "
        "dashboard's process — Python cannot stop it from here — and uses a CPU core until it ends; restart "
        "the dashboard (Ctrl+C in its terminal, then start it again) to stop it now.")


def _with_script_context(thread) -> None:
    """Let a worker thread use this page's Streamlit context (caches, spinners), as Streamlit documents."""
    from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

    context = get_script_run_ctx(suppress_warning=True)
    if context is not None:
        add_script_run_ctx(thread, context)


def run_learner_code(fn: Callable[..., Any], *args: Any, timeout_s: float = QUICK_LIMIT_S, doing: str = "",
                     **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` for a learner function, with a time limit; what goes wrong becomes an error box.

    The ONE way the results areas call learner code. The call runs in a worker thread
    (``dashboard.logic.guard.call_with_time_limit``, whose docstring says why a thread and not a signal
    or a process); after ``timeout_s`` seconds the page stops waiting and says where the code was busy,
    and that it keeps running in the dashboard's process. An exception becomes the same error box as
    ``friendly`` draws (file and line of the learner's code). Either way, after drawing it raises
    ``LearnerCodeStopped``, which the surrounding ``with friendly(...)`` block (or the results area's
    own) ends quietly: the rest of that block is skipped, the rest of the page still draws.

    Args:
        timeout_s: seconds to wait; default ``QUICK_LIMIT_S``.
        doing: what the page was doing, for the message (``"tokenizing with tokenize_function"``).
    """
    try:
        return call_with_time_limit(fn, *args, timeout_s=timeout_s, prepare_thread=_with_script_context, **kwargs)
    except LearnerCodeTimeout as late:
        show_error(time_limit_error(late, doing=doing))
        raise LearnerCodeStopped(str(late)) from late
    except Exception as error:  # noqa: BLE001 - whatever learner code raises is shown, not crashed on
        show_error(friendly_error(error, doing=doing or f"running {function_name(fn)}"))
        raise LearnerCodeStopped(str(error)) from error


def stage_module(key: str) -> ModuleType | None:
    """The stage's module for the results area: the reference in demo mode, else the learner's file.

    None (with an error box drawn) when it cannot be imported.
    """
    reference = demo_mode()
    try:
        return load_stage_module(key, reference=reference)
    except Exception as error:  # noqa: BLE001
        show_error(friendly_error(error, doing=f"importing {'the reference' if reference else 'your'} {key} file"))
        return None


def module_fingerprint(module: ModuleType) -> str:
    """Changes whenever the module's file changes: part of every cache key built on learner code."""
    path = getattr(module, "__file__", "") or ""
    return f"{module.__name__}:{file_hash(path) if path else ''}"


# -- cached models ------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model with your load_model_and_tokenizer …", max_entries=2)
def _model_from_module(fingerprint: str, name: str | None, _module: ModuleType):
    return run_learner_code(_module.load_model_and_tokenizer, name, timeout_s=LOAD_LIMIT_S,
                            doing="loading the model with load_model_and_tokenizer")


def model_from_module(module: ModuleType, name: str | None = None):
    """``module.load_model_and_tokenizer(name)``, loaded once per file version. Never mutate the result."""
    return _model_from_module(module_fingerprint(module), name, module)


@st.cache_resource(show_spinner="Loading the base model …", max_entries=1)
def base_model(name: str | None = None):
    """The base model and tokenizer, loaded by the engine (not by learner code). Never mutate them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lessons.engine.assets import resolve_model_source

    source = resolve_model_source(name)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source).eval()
    return model, tokenizer


@st.cache_resource(show_spinner="Loading the tokenizer …", max_entries=1)
def base_tokenizer(name: str | None = None):
    """The base model's tokenizer alone (fast). Never mutate it: ``copy.deepcopy`` it first."""
    from transformers import AutoTokenizer

    from lessons.engine.assets import resolve_model_source

    return AutoTokenizer.from_pretrained(resolve_model_source(name))


def earlier_module(key: str) -> ModuleType:
    """An earlier stage's module, to feed this stage's results (reference in demo mode, else the learner's).

    The page is open only when the stage before passed, so the learner's own earlier code is used.
    """
    return load_stage_module(key, reference=demo_mode())


@st.cache_data(show_spinner="Formatting the recipes with stage 2 …", max_entries=2)
def formatted_recipes(fingerprint: str, _stage2: ModuleType, source: str = "wikibooks") -> list[dict]:
    """Every valid recipe of ``source``, formatted by stage 2's ``format_recipe``: ``{"title", "text"}`` rows."""
    def format_all() -> list[dict]:
        raw = _stage2.load_recipes(source)
        return [{"title": str(recipe.get("title", "")), "text": _stage2.format_recipe(recipe)["text"]}
                for recipe in raw if _stage2.is_valid_recipe(recipe)]

    # Time-limited like run_learner_code, but not drawn: recipe_texts falls back on the fixture instead.
    return call_with_time_limit(format_all, timeout_s=LOAD_LIMIT_S, prepare_thread=_with_script_context)


def recipe_texts(source: str = "wikibooks") -> list[dict]:
    """Formatted recipes for a results page: from stage 2's code, or the shipped fixture when it fails."""
    try:
        stage2 = earlier_module("stage2")
        return formatted_recipes(module_fingerprint(stage2), stage2, source)
    except Exception as error:  # noqa: BLE001 - the page still works on the fixture
        from lessons.engine.paths import DATA_DIR
        import json

        st.caption(f"(stage 2's code failed — {type(error).__name__}: {error} — so the 48 recipes of "
                   "data/fixtures/formatted_recipes.jsonl are used here)")
        lines = (DATA_DIR / "fixtures" / "formatted_recipes.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def adapter_dir(run: dict) -> Path | None:
    """Where a finished run saved its LoRA adapter (``adapter_config.json`` inside), or None."""
    from lessons.engine import jobs

    summary = run.get("summary") or {}
    candidates = [summary.get(key) for key in ("adapter", "adapter_path", "adapter_dir")]
    if run.get("checkpoint_dir"):
        candidates.append(Path(run["checkpoint_dir"]) / "adapter")
    candidates.append(jobs.run_dir(run["id"]) / "adapter")
    for candidate in candidates:
        if candidate and (Path(candidate) / "adapter_config.json").exists():
            return Path(candidate)
    return None


def finetuned_choices(store: Store) -> list[str]:
    """The ids of finished training runs that saved an adapter, oldest first."""
    return [run["id"] for run in store.runs("train") if run["status"] == "finished" and adapter_dir(run)]


@st.cache_resource(show_spinner="Loading the fine-tuned model …", max_entries=2)
def finetuned_model(run_id: str):
    """(model, tokenizer) of a finished run: the base model with the run's adapter, by the engine. Never mutate.

    The tokenizer comes from the adapter's folder when the run saved it (stage 3 added ``[END]``), and
    the base model's embeddings are resized to it before the adapter goes on.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lessons.engine.assets import resolve_model_source
    from lessons.engine.constants import END_MARKER

    store = open_results_store()
    run = store.run(run_id)
    folder = adapter_dir(run) if run else None
    if folder is None:
        raise LabError(f"run {run_id} has no saved adapter (did it finish?)")
    config = run.get("config") or {}
    source = resolve_model_source(config.get("model") or None)
    has_tokenizer = any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(folder if has_tokenizer else source)
    if END_MARKER not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    base = AutoModelForCausalLM.from_pretrained(source)
    if base.get_input_embeddings().weight.shape[0] != len(tokenizer):
        base.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(base, str(folder)).eval()
    return model, tokenizer


def generate_until_end(model, tokenizer, prompt: str, *, max_new_tokens: int = 80) -> str:
    """Greedy continuation by the engine (not learner code) that stops at ``[END]``; only the new text."""
    import torch

    from lessons.engine.constants import END_MARKER

    inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    stop_ids = [tokenizer.eos_token_id] + ([tokenizer.get_vocab()[END_MARKER]] if END_MARKER in tokenizer.get_vocab()
                                           else [])
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                pad_token_id=tokenizer.pad_token_id, stop_strings=[END_MARKER], tokenizer=tokenizer)
    new_ids = [i for i in output[0, inputs["input_ids"].shape[1]:].tolist() if i != tokenizer.eos_token_id]
    text = tokenizer.decode(new_ids, skip_special_tokens=False)
    return text[: text.index(END_MARKER) + len(END_MARKER)] if END_MARKER in text else text


# -- the stage page ----------------------------------------------------------------------------------
def stage_page(key: str) -> None:
    """One stage's page: lesson, checks, results, hints and questions (or the lock that closes it)."""
    stage = find_stage(key)
    store = open_store()
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
    st.warning(f"🔒 This page is locked. {lock.message}", icon="🔒")
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
    st.subheader("Your checks")
    st.markdown(f"Complete `{relative_to_project(stage.learner_file)}`, then run the checks in a terminal "
                "from the project folder, or with the button:")
    st.code(stage.check_command, language="bash")
    output_key = f"{stage.key}_check_output"
    if st.button("▶ Run checks", key=f"{stage.key}_run_checks"):
        with st.spinner(f"Running {stage.check_command} …"):
            st.session_state[output_key] = lesson_logic.run_checks(stage)
    result = st.session_state.get(output_key)
    if result is not None:
        label = "timed out" if result.timed_out else ("all passed" if result.ok else "some failed")
        with st.expander(f"Output of `{result.command}` ({label})", expanded=False):
            st.code(result.output[-20_000:] or "(no output)", language="text")

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
                st.code(row.headline, language="text")
            if row.details:
                with st.expander("Full report"):
                    st.code(row.details, language="text")


def draw_results(stage: Stage, store: Store) -> None:
    st.subheader("Results of your code")
    progress = stage_progress(store, stage)
    if not (demo_mode() or progress.status == PASSED):
        st.info("Your results appear here once every check of this stage passes: the charts are drawn from "
                "your own functions.", icon="⏳")
        return
    module = stage_module(stage.key)
    if module is None:
        return
    try:
        results = importlib.import_module(f"dashboard.results.{stage.key}")
    except ModuleNotFoundError:
        st.info("This stage has no results area yet.")
        return
    with friendly(f"drawing the results of {'the reference' if demo_mode() else 'your'} code"):
        with open_results_store() as results_store:
            results.draw(module, results_store)


def draw_hints(stage: Stage, store: Store) -> None:
    st.subheader("Stuck? Hints")
    if not lesson_logic.reference_available(stage):
        st.info("The reference solutions were withheld in this copy of the lab, so hints, partial and full "
                "solutions cannot be revealed here. The first hint of each TODO is the comment above it in "
                f"{relative_to_project(stage.learner_file)}; ask your instructor for more.")
        return
    exercises = lesson_logic.hint_exercises(stage)
    if not exercises:
        st.caption("This stage has no exercises.")
        return
    st.caption("Each reveal goes one step further: a hint (a question), then part of the solution, then all of it. "
               "Try the hint first.")
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
