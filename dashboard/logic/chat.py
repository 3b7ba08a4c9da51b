"""The chat: a learner's request becomes a recipe prompt, and the model's answer streams back token by token.

Engine code only (never the learner's), so it runs in the dashboard's own process,
where the Chat page keeps the models with ``st.cache_resource``: the worker
(``dashboard.logic.kernel``) answers one whole task at a time, and a chat must
show each word as it comes. ``model.generate`` runs in a thread of its own and
feeds a ``TextIteratorStreamer``; the page reads the pieces as they arrive, so
it never freezes.

Worked example::

    >>> recipe_prompt("a quick tomato soup, please")
    'RECIPE: A quick tomato soup\\nINGREDIENTS:'
    >>> stream = stream_reply(model, tokenizer, prompt, ChatSettings(max_new_tokens=300))
    >>> for piece in stream: print(piece, end="")       # " 2 tomatoes;", " 1 onion;", … "[END]"
    >>> stream.reply.stop_reason
    'reached [END]'

Every answer is saved in the store as a generation (stage ``"chat"``, label
``"base"`` or ``"finetuned"``, the settings and timings beside it), so a reload
keeps the conversation and the lab report has it. "Clear the chat" hides what
came before from the page and deletes nothing.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from lessons.engine.constants import END_MARKER, PROMPT_TEMPLATE
from lessons.engine.errors import LabError
from lessons.engine.store import Store

CHAT_STAGE = "chat"                # the store's stage for chat answers (generations) and the clear mark (results)
CLEARED_KEY = "cleared_after"      # results key: the id of the last answer a "clear the chat" hid
BASE_LABEL, FINETUNED_LABEL = "base", "finetuned"
OFF_TOPIC_QUESTION = "What is Python?"  # the off-topic probe: nothing to do with cooking
RECIPE, QUESTION = "recipe", "question"  # how a request becomes a prompt: a recipe's start, or the words as they are
MAX_NEW_TOKENS_LIMIT = 600         # a longer answer than a whole recipe (median 204 tokens) only costs waiting
REPORT_EXCHANGES = 20              # the lab report shows this many answers, newest first
# Polite openings a learner types that are not part of a recipe's title ("give me a recipe for pancakes").
_REQUEST_OPENING = re.compile(
    r"^(?:(?:please|hi|hello)[,!.]?\s+)?(?:(?:can|could|would) you\s+)?(?:please\s+)?"
    r"(?:(?:give|show|tell|write|make|send)(?: me)?|i(?:'d| would)? (?:like|want)|how (?:do i|to) (?:make|cook))?\s*"
    r"(?:(?:a|an|the|some)\s+)?(?:recipe(?:s)?\s+(?:for|of)\s+)?", re.IGNORECASE)


class ChatError(LabError):
    """A request or a setting the chat cannot use; the message says what to change."""


@dataclass(frozen=True)
class ChatSettings:
    """How the model writes its answer; the page's sliders are these fields."""

    temperature: float = field(default=0.8, metadata={
        "help": "divides the scores before sampling: below 1 safer and more repetitive, above 1 wilder"})
    top_p: float = field(default=0.9, metadata={
        "help": "sample only from the most probable tokens whose probabilities add up to this (1 = all of them)"})
    max_new_tokens: int = field(default=300, metadata={
        "help": "the answer stops after this many tokens if the model has not written [END] by then"})
    seed: int | None = field(default=None, metadata={
        "help": "fix the random draws to get the same answer again; None = a new answer every time"})

    def __post_init__(self) -> None:
        problems = settings_problems(self)
        if problems:
            raise ChatError("These chat settings cannot be used: " + "; ".join(problems) + ".")


def settings_problems(settings: Any) -> list[str]:
    """What is wrong with ``settings`` (anything with the fields of ``ChatSettings``), in words; [] when fine."""
    problems = []
    if not isinstance(settings.temperature, (int, float)) or not settings.temperature > 0:
        problems.append(f"temperature must be above 0 (got {settings.temperature!r}); it divides the scores, and "
                        "for the single most probable token every time use a small one such as 0.1")
    if not isinstance(settings.top_p, (int, float)) or not 0 < settings.top_p <= 1:
        problems.append(f"top-p must be above 0 and at most 1 (got {settings.top_p!r}); 1 keeps every token")
    if (isinstance(settings.max_new_tokens, bool) or not isinstance(settings.max_new_tokens, int)
            or not 1 <= settings.max_new_tokens <= MAX_NEW_TOKENS_LIMIT):
        problems.append(f"max new tokens must be a whole number from 1 to {MAX_NEW_TOKENS_LIMIT} "
                        f"(got {settings.max_new_tokens!r})")
    return problems


# -- 1. the request becomes a prompt in the format the model was trained on -------------------------
def recipe_title(request: str) -> str:
    """The dish a request names, as a one-line title: ``"give me a recipe for pancakes!"`` → ``"Pancakes"``."""
    words = " ".join(str(request).split())  # a title is one line: stage 2 wrote every title so
    title = _REQUEST_OPENING.sub("", words, count=1).strip(" ?!.,;:")
    title = re.sub(r"[,;]?\s*please$", "", title, flags=re.IGNORECASE).strip(" ?!.,;:")
    if not title:
        title = words.strip(" ?!.,;:")
    if not title:
        raise ChatError("Type what you would like to cook first, for example: tomato soup.")
    return title[:1].upper() + title[1:]


def recipe_prompt(request: str) -> str:
    """The start of a recipe in stage 2's format, for the model to continue: ``RECIPE: <title>\\nINGREDIENTS:``."""
    return PROMPT_TEMPLATE.format(title=recipe_title(request))


def question_prompt(question: str) -> str:
    """A question as it is, then a new line, as stage 5's off-topic probe asks it: does a recipe come back?"""
    words = " ".join(str(question).split())
    if not words:
        raise ChatError("Type a question first, for example: What is Python?")
    return words + "\n"


def prompt_for(request: str, kind: str = RECIPE) -> str:
    """``recipe_prompt`` for ``kind`` "recipe", ``question_prompt`` for "question"."""
    if kind == RECIPE:
        return recipe_prompt(request)
    if kind == QUESTION:
        return question_prompt(request)
    raise ChatError(f"a request is asked as {RECIPE!r} or {QUESTION!r}, not {kind!r}")


# -- 2. the answer, streamed -------------------------------------------------------------------------
@dataclass
class Reply:
    """A finished answer: its text, why it stopped, and how long it took."""

    text: str                  # what the model wrote after the prompt, up to and with [END] when it wrote one
    stop_reason: str           # "reached [END]", "hit the 300-token limit", "wrote its end-of-text token", "stopped"
    new_tokens: int            # tokens the model generated (the limit counts these)
    first_piece_s: float       # seconds from the start until the first words appeared
    total_s: float             # seconds for the whole answer
    pieces: int                # how many pieces the stream delivered

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0


def stop_token_ids(tokenizer) -> list[int]:
    """The ids that end an answer: the end-of-text token, and ``[END]`` where the tokenizer has it as one token."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    end_id = tokenizer.get_vocab().get(END_MARKER)
    return ids + ([end_id] if end_id is not None and end_id not in ids else [])


def stop_reason(text: str, last_token: int | None, new_tokens: int, *, stop_ids: list[int], max_new_tokens: int,
                cancelled: bool = False) -> str:
    """Why an answer ended, in words a learner reads under it."""
    if END_MARKER in text:
        return f"reached {END_MARKER}"
    if cancelled:
        return "stopped before the end"
    if last_token is not None and last_token in stop_ids:
        return "wrote its end-of-text token"
    if new_tokens >= max_new_tokens:
        return f"hit the {max_new_tokens}-token limit"
    return "stopped"


class ReplyStream:
    """The answer as it is written: iterate for the pieces; then ``reply`` holds the whole ``Reply``.

    Leaving the loop early (or ``close()``) stops the generation at its next token, so an
    abandoned answer does not keep the CPU busy.
    """

    def __init__(self, model, tokenizer, prompt: str, settings: ChatSettings):
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        self.prompt, self.settings = prompt, settings
        self.reply: Reply | None = None
        self._tokenizer = tokenizer
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._output = None
        self._stop_ids = stop_token_ids(tokenizer)
        cancel = self._cancel

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                import torch

                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        device = next(model.parameters()).device
        self._inputs = tokenizer(prompt, return_tensors="pt").to(device)
        # Special tokens stay in the text: [END] is one where stage 3 made it so, and the learner should see it.
        self._streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=False)
        self._hidden = [token for token in (tokenizer.eos_token, tokenizer.pad_token) if token]
        self._started = time.perf_counter()
        self._thread = threading.Thread(
            target=self._generate, name="chat-generate", daemon=True,
            args=(model, dict(**self._inputs, max_new_tokens=settings.max_new_tokens, do_sample=True,
                              temperature=float(settings.temperature), top_p=float(settings.top_p),
                              eos_token_id=self._stop_ids, pad_token_id=tokenizer.pad_token_id,
                              # [END] written as several tokens (the base tokenizer) is caught as a string
                              stop_strings=[END_MARKER], tokenizer=tokenizer,
                              stopping_criteria=StoppingCriteriaList([_Cancelled()]), streamer=self._streamer)))
        self._thread.start()

    def _generate(self, model, arguments: dict) -> None:
        import torch

        try:
            with _ONE_ANSWER_AT_A_TIME, torch.no_grad():
                if self.settings.seed is not None:
                    torch.manual_seed(self.settings.seed)
                self._output = model.generate(**arguments)
        except BaseException as error:  # noqa: BLE001 - handed to the reader, who raises it
            self._error = error
            self._streamer.end()

    def __iter__(self) -> Iterator[str]:
        text, first_piece_s, pieces, read_to_end = "", None, 0, False
        try:
            for piece in self._streamer:
                for hidden in self._hidden:
                    piece = piece.replace(hidden, "")
                if END_MARKER in text + piece:  # the answer ends with [END]: nothing after it is shown
                    piece = (text + piece)[: (text + piece).index(END_MARKER) + len(END_MARKER)][len(text):]
                if piece:
                    if first_piece_s is None:
                        first_piece_s = time.perf_counter() - self._started
                    text += piece
                    pieces += 1
                    yield piece
                if END_MARKER in text:
                    break
            else:
                read_to_end = True
        finally:
            self._cancel.set()  # a reader that left early (or saw [END]) stops the generation at its next token
            self._thread.join()
            if self._error is None:  # built even when the reader left early (a page interrupted mid-answer)
                self.reply = self._finished(text, first_piece_s, pieces, cancelled=not read_to_end)
        if self._error is not None:
            raise ChatError(f"The model could not answer: {type(self._error).__name__}: {self._error}") \
                from self._error

    def _finished(self, text: str, first_piece_s: float | None, pieces: int, *, cancelled: bool) -> Reply:
        new_ids = self._output[0, self._inputs["input_ids"].shape[1]:].tolist() if self._output is not None else []
        total_s = time.perf_counter() - self._started
        reason = stop_reason(text, new_ids[-1] if new_ids else None, len(new_ids), stop_ids=self._stop_ids,
                             max_new_tokens=self.settings.max_new_tokens, cancelled=cancelled)
        return Reply(text=text, stop_reason=reason, new_tokens=len(new_ids),
                     first_piece_s=first_piece_s if first_piece_s is not None else total_s, total_s=total_s,
                     pieces=pieces)

    def close(self) -> None:
        """Stop the answer where it is."""
        self._cancel.set()
        self._thread.join()


_ONE_ANSWER_AT_A_TIME = threading.Lock()  # two answers at once on a 2-core laptop are each slower, not both faster


def stream_reply(model, tokenizer, prompt: str, settings: ChatSettings | None = None) -> ReplyStream:
    """Start the answer to ``prompt`` (sampled with ``settings``) in a thread; iterate the result for its pieces."""
    return ReplyStream(model, tokenizer, prompt, settings or ChatSettings())


def answer(model, tokenizer, prompt: str, settings: ChatSettings | None = None) -> Reply:
    """The whole answer at once (``stream_reply`` read to its end)."""
    stream = stream_reply(model, tokenizer, prompt, settings)
    for _ in stream:
        pass
    return stream.reply


# -- 3. the models the chat talks to -------------------------------------------------------------------
def chat_device() -> str:
    """Where the chat's model runs: a CUDA GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_chat_model(spec: dict | None):
    """(model, tokenizer) for the chat, in evaluation mode on ``chat_device()``: the base model (``spec`` None)
    or a finished run's fine-tuned model (``dashboard.logic.runs.model_spec``). Engine code; never change them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lessons.engine.assets import resolve_model_source
    from lessons.engine.trained import load_trained_model

    if spec is None:
        source = resolve_model_source(None)
        model, tokenizer = AutoModelForCausalLM.from_pretrained(source).eval(), AutoTokenizer.from_pretrained(source)
    else:
        model, tokenizer = load_trained_model(spec["adapter"], spec.get("model") or None)
    return model.to(chat_device()), tokenizer


# -- 4. the conversation in the store -------------------------------------------------------------------
def save_exchange(store: Store, reply: Reply, *, request: str, prompt: str, label: str, model_name: str,
                  settings: ChatSettings, kind: str = RECIPE) -> None:
    """Keep one answer (with its request, settings and timings) as a generation of stage "chat"."""
    store.save_generation(CHAT_STAGE, label, model_name, prompt, reply.text, settings={
        "request": request, "kind": kind, **asdict(settings), "stop_reason": reply.stop_reason,
        "new_tokens": reply.new_tokens, "first_piece_s": round(reply.first_piece_s, 3),
        "total_s": round(reply.total_s, 3), "tokens_per_s": round(reply.tokens_per_s, 2)})


def exchanges(store: Store, *, include_cleared: bool = False) -> list[dict]:
    """The saved answers, oldest first; without ``include_cleared`` only those after the last "clear the chat"."""
    rows = store.generations(stage=CHAT_STAGE)
    cleared_after = None if include_cleared else store.result(CHAT_STAGE, CLEARED_KEY)
    return [row for row in rows if cleared_after is None or row["id"] > cleared_after]


def clear_conversation(store: Store) -> None:
    """Hide every answer so far from the page (they stay in the store and in the lab report)."""
    rows = store.generations(stage=CHAT_STAGE)
    if rows:
        store.put_result(CHAT_STAGE, CLEARED_KEY, rows[-1]["id"])


def report_exchanges(store: Store, limit: int = REPORT_EXCHANGES) -> list[dict]:
    """The lab report's answers: every saved one, cleared or not, newest first, at most ``limit``."""
    return list(reversed(exchanges(store, include_cleared=True)))[:limit]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$])")


def as_markdown(text: str) -> str:
    """``text`` shown as written in a chat message: Markdown's special characters escaped, every line break kept."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def speed_rows(rows: list[dict]) -> list[dict]:
    """One row per saved answer for the speed chart: its number, model, tokens, tokens per second, why it stopped."""
    return [{"answer": number, "model": row["model"], "tokens": (row.get("settings") or {}).get("new_tokens", 0),
             "tokens per second": (row.get("settings") or {}).get("tokens_per_s", 0.0),
             "stopped": (row.get("settings") or {}).get("stop_reason", "")}
            for number, row in enumerate(rows, start=1)]


def shown_answer(prompt: str, text: str, kind: str) -> str:
    """A recipe answer is the prompt's recipe continued: shown whole, from its RECIPE: line."""
    return prompt + text if kind == RECIPE else text


def answer_caption(model_name: str, settings: dict) -> str:
    """The line under an answer: which model, why it stopped, how fast, with which settings."""
    return (f"{model_name} · {settings.get('stop_reason', '')} · {settings.get('new_tokens', 0)} tokens in "
            f"{settings.get('total_s', 0):.1f} s ({settings.get('tokens_per_s', 0):.1f} tokens/s) · temperature "
            f"{settings.get('temperature')} · top-p {settings.get('top_p')} · limit {settings.get('max_new_tokens')}")
