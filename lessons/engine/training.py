"""One LoRA training run, start to finish, with every number streamed to the store.

``run_training`` chains the stage functions, from the learner's files or the
reference solutions (``modules``), in lesson order:

    stage 2   load_recipes, prepare_splits        raw recipes → "train" / "validation" texts
    stage 3   configure_tokenizer, tokenize_function    pad token, [END], token ids
    stage 4A  make_collator                       batches with next-token labels
    stage 4B  attention_modules, make_lora_config, apply_lora, trainable_parameters,
              make_training_args, train, save_adapter

and adds what the lab needs around them: a ``MetricsCallback`` that writes each
logged step (training loss, validation loss, learning rate, tokens per second
counting real tokens only, ETA) to the store as it happens; a clean stop when
``should_stop()`` says so (the dashboard's cancel), keeping the curve so far
and a checkpoint; checkpoints every ``eval_every`` steps, so a killed run goes
on from the last one with ``resume=True``; the adapter saved at the end; and
the run's status and summary kept up to date in the store.

``run_training`` reads as its phases, one function each, called in this order: ``open_run``,
``prepare_data`` (stage 2), ``prepare_model`` (stage 3), ``prepare_batches`` (stage 4A), ``add_lora``,
``training_arguments``, ``train_with_callbacks`` and ``save_and_summarise`` (stage 4B). The speed tricks it
switches on live in ``lessons.engine.speed``.

The dashboard's background job (``lessons.engine.jobs``) and the instructor's
pipeline (``lessons.engine.pipeline``) call it; tests pass a tiny model.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from transformers import TrainerCallback

from .speed import (ChunkedLoss, FrozenInBf16, drop_padding, length_grouped_order, packing_collator,
                    speed_up_trainable_tokens, supports_packing, without_right_padding_mask)
from .constants import END_MARKER
from .measure import perplexity_from_loss
from .methods import (FULL_LEARNING_RATE, SAVED_MODEL, check_method, counted_as_weights, final_measurements,
                      float32_footprint, load_4bit, memory_kind, peak_memory_growth, quantize_4bit,
                      ready_for_4bit_training, save_full_model, start_memory, train_every_weight)
from .store import Store

CHECKPOINTS = "checkpoints"   # under output_dir: the Trainer's checkpoint-N folders
ADAPTER = "adapter"           # under output_dir: the finished adapter (+ tokenizer)
SPLITS = "splits"             # under output_dir: the run's own train and validation texts, for stage 5
SETTINGS_FILE = "training_settings.json"  # in the adapter folder: what was trained, on which base


@dataclass
class TrainSettings:
    """Everything one LoRA run needs to know; the dashboard's form and the job's config are these fields."""

    model: str | None = field(default=None, metadata={
        "help": "model name or folder; None = the embedded SmolLM2-135M-Instruct"})
    source: str = field(default="wikibooks", metadata={
        "help": "recipes for stage 2's load_recipes: 'wikibooks', 'wikibooks-de', a RecipeNLG CSV path, ..."})
    n_recipes: int = field(default=400, metadata={"help": "recipes used, train and validation together"})
    test_size: float = field(default=0.1, metadata={"help": "share of the recipes held out for validation"})
    max_length: int = field(default=768, metadata={
        "help": "tokens per recipe, longer ones cut; 768 keeps nearly every Wikibooks recipe whole with its [END]"})
    rank: int = field(default=8, metadata={"help": "LoRA rank r: directions the correction may take"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha: the correction is scaled by alpha / r"})
    dropout: float = field(default=0.0, metadata={
        "help": "dropout on the LoRA branch while training; 0 = none (a short run hardly overfits, and it is faster)"})
    target_modules: list[str] | None = field(default=None, metadata={
        "help": "layers to adapt; None = stage 4B's attention_modules(model)"})
    learning_rate: float = field(default=5e-3, metadata={
        "help": "peak learning rate, falling linearly to 0 (an adapter starts at zero: a short run needs big steps)"})
    batch_size: int = field(default=4, metadata={"help": "recipes per step (4 × 256 tokens fits a laptop)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training recipes (unless max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many steps; -1 = run the epochs"})
    eval_every: int = field(default=10, metadata={
        "help": "steps between validation losses, and between checkpoints"})
    seed: int = field(default=42, metadata={"help": "one seed for the split, the LoRA initialisation and the order"})
    train_new_tokens: bool = field(default=True, metadata={
        "help": "also train the embedding rows of tokens stage 3 added ([END]) and keep them in the adapter"})
    end_from_eos: bool = field(default=True, metadata={
        "help": "start [END]'s embedding row as a copy of <|im_end|>'s, which the model already predicts at an end"})
    group_by_length: bool = field(default=True, metadata={
        "help": "batches of recipes of similar length, each padded only to its longest (batch order shuffled once)"})
    frozen_in_bf16: bool = field(default=True, metadata={
        "help": "with bf16 autocast, hold the frozen base weights in bfloat16 while training (float32 put back after)"})
    chunked_loss: bool = field(default=True, metadata={
        "help": "compute the output layer and the loss 128 tokens at a time on a CPU (same loss, less memory)"})
    packing: bool = field(default=False, metadata={
        "help": "instead of grouping: a step's recipes end to end in one row, each attending only to itself"})
    method: str = field(default="lora", metadata={
        "help": "'lora' (adapter on a frozen base), 'full' (every weight trains) or 'qlora' (LoRA on a 4-bit base)"})
    full_learning_rate: float = field(default=FULL_LEARNING_RATE, metadata={
        "help": "peak learning rate instead of learning_rate when method='full' (it moves the pretrained weights)"})
    stop_rate_prompts: int = field(default=0, metadata={
        "help": "held-out titles generated from at the end, for the stop rate (0 = skip: stage 5 measures it)"})

    def __post_init__(self):
        check_method(self.method)


def _print(message: str) -> None:
    print(f"[train] {message}", flush=True)


def _interactive() -> bool:
    """A progress bar belongs in a terminal, not in a background job's log file."""
    return sys.stderr.isatty()


class MetricsCallback(TrainerCallback):
    """Writes every logged step to the store, keeps the run's summary current, and stops on request.

    * a training log (``"loss"`` in it) becomes a ``"train"`` metric with the
      epoch, learning rate, tokens per second and ETA;
    * an evaluation (``"eval_loss"``) becomes a ``"validation"`` metric, with
      its perplexity;
    * after each step ``should_stop()`` is asked; when it says yes the Trainer
      saves a checkpoint and stops, so ``resume=True`` can go on from there.

    Tokens per second count real tokens only: the Trainer tracks
    ``num_input_tokens_seen`` from the attention masks (``include_num_input_tokens_seen="non_padding"``),
    over the time spent in training steps (not evaluating).
    """

    def __init__(self, store: Store, run_id: str, should_stop: Callable[[], bool] = lambda: False, *,
                 summary: dict | None = None):
        self.store, self.run_id, self.should_stop = store, run_id, should_stop
        self.summary = summary if summary is not None else {}
        self.cancelled = False
        self.last_eval_step: int | None = None
        self.train_loss: float | None = None
        self.eval_loss: float | None = None
        self.tokens_per_s: float | None = None
        self.batch_tokens = {"real": 0, "computed": 0}  # training batches only (see count_batch)
        self._counting = False

    # -- timing ---------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._counting = True
        self.started = time.perf_counter()
        self.first_step = state.global_step        # > 0 after a resume
        self.first_tokens = state.num_input_tokens_seen
        self.step_seconds = 0.0                     # time inside training steps, evaluation left out
        self._step_started = None
        self.summary.update(total_steps=state.max_steps, resumed_from_step=state.global_step or None)
        self.store.update_run(self.run_id, summary=self.summary)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    # -- padding: real tokens against computed ones, training batches only ------------------------------
    def count_batch(self, batch: dict) -> None:
        """Called by ``TrainingCollator`` for every collated batch; evaluation batches are left out."""
        if self._counting:
            ids = batch["input_ids"]
            mask = batch.get("attention_mask")
            self.batch_tokens["real"] += int(mask.sum()) if mask is not None else int(ids.numel())
            self.batch_tokens["computed"] += int(ids.numel())

    def on_evaluate(self, args, state, control, **kwargs):
        self._counting = True   # evaluation over: the next batches train

    def on_train_end(self, args, state, control, **kwargs):
        self._counting = False

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_evaluate:
            self._counting = False  # the batches collated next are the evaluation's
        if self._step_started is not None:
            self.step_seconds += time.perf_counter() - self._step_started
            self._step_started = None
        if self.should_stop():
            self.cancelled = True
            control.should_save = True               # a checkpoint to resume from
            control.should_training_stop = True
        return control

    def _eta(self, state) -> float | None:
        done = state.global_step - self.first_step
        if done <= 0 or not state.max_steps:
            return None
        per_step = (time.perf_counter() - self.started) / done  # evaluations included: they take time too
        return max(0.0, (state.max_steps - state.global_step) * per_step)

    # -- the numbers -------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = state.global_step
        if "loss" in logs:
            tokens = state.num_input_tokens_seen - self.first_tokens
            self.tokens_per_s = tokens / self.step_seconds if self.step_seconds > 0 and tokens > 0 else None
            self.train_loss = float(logs["loss"])
            extra = {key: logs[key] for key in ("grad_norm",) if key in logs}
            self.store.log_metric(self.run_id, step, "train", epoch=logs.get("epoch", state.epoch),
                                  loss=self.train_loss, learning_rate=logs.get("learning_rate"),
                                  tokens_per_s=self.tokens_per_s, eta_s=self._eta(state),
                                  tokens_seen=state.num_input_tokens_seen, **extra)
        if "eval_loss" in logs:
            self.eval_loss = float(logs["eval_loss"])
            self.last_eval_step = step
            self.store.log_metric(self.run_id, step, "validation", epoch=logs.get("epoch", state.epoch),
                                  loss=self.eval_loss, perplexity=perplexity_from_loss(self.eval_loss))
        self.summary.update(step=step, train_loss=self.train_loss, eval_loss=self.eval_loss,
                            tokens_per_s=self.tokens_per_s)
        if "loss" in logs or "eval_loss" in logs:
            self.store.update_run(self.run_id, summary=self.summary)

    def on_save(self, args, state, control, **kwargs):
        self.summary["last_checkpoint"] = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        self.store.update_run(self.run_id, summary=self.summary)


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` folder a run left in ``output_dir/checkpoints``, or None."""
    folder = Path(output_dir) / CHECKPOINTS
    found = [(int(path.name.split("-")[-1]), path) for path in folder.glob("checkpoint-*")
             if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").exists()]
    return max(found)[1] if found else None


def _new_token_rows(model, tokenizer) -> dict[str, list[int]] | None:
    """``{"embed_tokens": [49152]}``: the embedding rows of the tokens stage 3 added, for peft to train and save.

    ``resize_token_embeddings`` fills a new row with random numbers, different in
    every process. Training that row with the adapter, and saving it in the
    adapter, keeps the fine-tuned model whole: stage 5 gets back exactly the
    [END] that was trained, and the model learns what [END] means.
    """
    end_id = tokenizer.convert_tokens_to_ids(END_MARKER)
    if end_id is None or end_id == tokenizer.unk_token_id:
        return None
    embeddings = model.get_input_embeddings()
    name = next((name for name, module in model.named_modules() if module is embeddings), "")
    if not name or end_id >= embeddings.weight.shape[0]:
        return None
    return {name.split(".")[-1]: [end_id]}


def init_end_from_eos(model, tokenizer) -> dict | None:
    """Copy the end-of-sequence token's embedding row into ``[END]``'s row (input and, if separate, output).

    Why: stage 3's ``resize_token_embeddings`` gives ``[END]`` a row drawn at
    random around the mean embedding. With SmolLM2's *tied* embeddings that one
    row is also ``[END]``'s output weight, and measured on the base model the
    random row's logit after a recipe's last line ranks about 22,000th of 49,153:
    a few dozen LoRA steps at lr 2e-4 cannot lift it to the top, so greedy
    generation never writes ``[END]`` and never stops. The eos row (``<|im_end|>``)
    is what this instruct model already predicts where an answer is over: ``[END]``
    starts there, and training only has to tell the two apart.

    Returns ``{"end_id", "eos_id", "tied"}``, or None when there is no ``[END]`` or no eos.
    """
    import torch

    end_id = tokenizer.get_vocab().get(END_MARKER)
    eos_id = tokenizer.eos_token_id
    if end_id is None or eos_id is None or end_id == eos_id:
        return None
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if end_id >= inputs.weight.shape[0]:
        return None
    tied = outputs is None or outputs.weight.data_ptr() == inputs.weight.data_ptr()
    with torch.no_grad():
        inputs.weight[end_id] = inputs.weight[eos_id]
        if not tied and end_id < outputs.weight.shape[0]:
            outputs.weight[end_id] = outputs.weight[eos_id]
    return {"end_id": end_id, "eos_id": eos_id, "tied": tied}


class TrainingCollator:
    """What the Trainer calls: stage 4A's (or the packing) collator, then the lab's two additions.

    * ``MetricsCallback.count_batch`` hears of every batch (real against computed tokens: the padding share);
    * right-padded batches lose their attention mask (``without_right_padding_mask``).
    """

    def __init__(self, collator, callback: MetricsCallback):
        self.collator, self.callback = collator, callback

    def __call__(self, features, return_tensors=None):
        batch = self.collator(features)
        self.callback.count_batch(batch)
        return without_right_padding_mask(batch)


def _load_model(settings: TrainSettings):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .assets import resolve_model_source

    source = resolve_model_source(settings.model)
    _print(f"loading {settings.model or 'the embedded SmolLM2-135M-Instruct'} from {source}"
           + (" in 4-bit" if settings.method == "qlora" else ""))
    model = load_4bit(source) if settings.method == "qlora" else AutoModelForCausalLM.from_pretrained(source)
    return model, AutoTokenizer.from_pretrained(source)


def _enforce_lab_arguments(args, settings: TrainSettings, *, grouped: bool) -> None:
    """What the lab needs from the TrainingArguments, whatever stage 4B's make_training_args set."""
    from transformers.trainer_utils import SaveStrategy

    args.include_num_input_tokens_seen = "non_padding"  # tokens/s of real tokens
    args.save_strategy = SaveStrategy.STEPS              # checkpoints, so a killed run can resume
    args.save_steps = max(1, settings.eval_every)
    if not args.save_total_limit:
        args.save_total_limit = 2
    args.report_to = []                                  # no online trackers
    if grouped:
        # the training set comes in length-grouped order already (length_grouped_order); keep it
        args.train_sampling_strategy = "sequential"
    args.disable_tqdm = not _interactive()              # a bar in a terminal, plain log lines in a job's log
    import torch

    if torch.cuda.is_available():
        args.optim = "adamw_torch_fused"                 # one kernel for the whole AdamW update on the GPU


def run_training(settings: TrainSettings, *, store: Store, run_id: str, modules: dict[str, ModuleType],
                 output_dir: str | Path, resume: bool = False, should_stop: Callable[[], bool] = lambda: False,
                 model=None, tokenizer=None, splits=None) -> dict:
    """Train one LoRA adapter with the stage functions in ``modules``; return the run's summary.

    Args:
        settings: what to train (``TrainSettings``).
        store: where the metrics, status and summary go; the run ``run_id`` is
            created there if it does not exist yet.
        run_id: the run to write to.
        modules: stage key → module, ``"stage2"``, ``"stage3"``, ``"stage4a"``, ``"stage4b"``
            (``lessons.engine.modules.load_stage_module(key, reference=...)``).
        output_dir: the run's folder: ``checkpoints/`` while training, ``adapter/`` at the end.
        resume: go on from the newest checkpoint in ``output_dir`` (from the start when there is none).
        should_stop: asked after every step; True stops cleanly with a checkpoint (status "cancelled").
        model, tokenizer: a model and tokenizer already loaded (the tests' tiny model, the
            pipeline's); default: load ``settings.model``. LoRA is put on this model in place.
        splits: a ``DatasetDict`` with "train" and "validation" texts already prepared; default:
            stage 2 loads ``settings.source`` and prepares them.

    Returns:
        The summary, as also saved in the store: ``steps``, ``total_steps``, ``train_loss``,
        ``eval_loss``, ``eval_perplexity``, ``seconds``, ``tokens_per_s``, ``trainable``,
        ``target_modules``, ``adapter_dir`` (``model_dir`` for full fine-tuning), ``cancelled``, ``completed``,
        and for every method the same measurements (``lessons.engine.methods``): ``peak_memory_mb``,
        ``heldout_perplexity``, ``stop_rate``, ``saved_bytes``, ... When a ``model`` was passed in, also
        ``"model"``: that model trained (with its LoRA adapter, a ``PeftModel``), which the store never sees.
    """
    from transformers import set_seed

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    given_model, started = model is not None, time.perf_counter()
    summary = open_run(store, run_id, settings, output_dir)
    try:
        stage2, stage3, stage4a, stage4b = (modules[key] for key in ("stage2", "stage3", "stage4a", "stage4b"))
        set_seed(settings.seed)
        splits = prepare_data(settings, stage2, splits)
        keep_splits(splits, output_dir, summary)
        model, tokenizer, tokenized = prepare_model(settings, stage3, splits, model, tokenizer, summary)
        collator, tokenized = prepare_batches(settings, stage4a, model, tokenizer, tokenized, summary)
        lora_model = add_lora(settings, stage4b, model, tokenizer, summary)
        args, tokenized = training_arguments(settings, stage4b, output_dir, tokenized, summary)
        trainer, callback = train_with_callbacks(settings, stage4b, lora_model, tokenizer, tokenized, collator, args,
                                                 store=store, run_id=run_id, output_dir=output_dir, resume=resume,
                                                 should_stop=should_stop, summary=summary)
        save_and_summarise(settings, stage4b, model, lora_model, tokenizer, trainer, callback, store=store,
                           run_id=run_id, output_dir=output_dir, summary=summary, started=started,
                           validation=(tokenized["validation"]["input_ids"], splits["validation"]["text"]
                                       if "text" in splits["validation"].column_names else []))
    except BaseException as error:
        store.update_run(run_id, status="failed", reason=f"{type(error).__name__}: {error}"[:500])
        raise
    result = dict(summary)
    if given_model:
        result["model"] = lora_model
    return result


# -- run_training's phases, in the order it calls them ------------------------------------------------------
def open_run(store: Store, run_id: str, settings: TrainSettings, output_dir: Path) -> dict[str, Any]:
    """Mark the run ``running`` in the store (creating it if new) and return its summary, empty for now.

    The summary is one dict that every later phase adds to, and that the store keeps current as training goes
    on, so the dashboard reads the run's state at any moment; this process's id lets a page tell a live run
    from one whose process died.
    """
    if store.run(run_id) is None:
        store.start_run("train", asdict(settings), run_id=run_id, checkpoint_dir=str(output_dir))
    summary: dict[str, Any] = {}
    store.update_run(run_id, status="running", pid=os.getpid(), checkpoint_dir=str(output_dir), reason="",
                     summary=summary)
    return summary


def prepare_data(settings: TrainSettings, stage2: ModuleType, splits=None):
    """Stage 2: the "train" and "validation" texts, from ``splits`` when given, else loaded and split here.

    ``stage2.load_recipes`` reads ``settings.source`` with its mess kept; ``stage2.prepare_splits`` filters,
    takes ``n_recipes``, formats each as ``RECIPE: … [END]`` and holds ``test_size`` of them out, seeded.
    """
    if splits is None:
        _print(f"stage 2: loading recipes from {settings.source!r}")
        raw = stage2.load_recipes(settings.source)
        splits = stage2.prepare_splits(raw, settings.n_recipes, settings.test_size, settings.seed)
        used = len(splits["train"]) + len(splits["validation"])
        if settings.n_recipes and used < settings.n_recipes:  # a bigger data size would train on these same recipes
            _print(f"data: {settings.n_recipes} recipes asked for, but {settings.source!r} has {used} usable ones: "
                   f"this run uses all {used}")
    _print(f"data: {len(splits['train'])} training recipes, {len(splits['validation'])} for validation")
    return splits


def keep_splits(splits, output_dir: Path, summary: dict) -> None:
    """Save the run's own texts (``splits/train.jsonl``, ``splits/validation.jsonl``): stage 5 evaluates on
    exactly the recipes this run held out, whatever made them (stage 2, or stage 7's own file)."""
    folder = output_dir / SPLITS
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "validation"):
        splits[name].to_json(str(folder / f"{name}.jsonl"), lines=True, force_ascii=False)
    summary.update(splits=str(folder), held_out_rows=len(splits["validation"]))


def saved_splits(output_dir: str | Path):
    """The splits ``keep_splits`` saved for a run (a ``DatasetDict``), or None for a run that saved none."""
    from datasets import Dataset, DatasetDict

    folder = Path(output_dir) / SPLITS
    files = {name: folder / f"{name}.jsonl" for name in ("train", "validation")}
    if not all(path.exists() for path in files.values()):
        return None
    return DatasetDict({name: Dataset.from_json(str(path)) for name, path in files.items()})


def prepare_model(settings: TrainSettings, stage3: ModuleType, splits, model, tokenizer, summary: dict):
    """Stage 3: the model and its tokenizer ready (pad token, ``[END]``), and every text turned into token ids.

    Loads ``settings.model`` unless a model and tokenizer were given (both or neither: None, None), lets stage 3's
    ``configure_tokenizer`` add ``[END]``, starts ``[END]``'s row from the end-of-sequence row
    (``init_end_from_eos``) and tokenizes both splits with stage 3's ``tokenize_function``. Returns
    ``(model, tokenizer, tokenized)``; the tokenizer's report and the row copied go into ``summary``.
    """
    if (model is None) != (tokenizer is None):
        raise ValueError("pass both model= and tokenizer= (a pair that belongs together), or neither")
    summary.update(memory_start_mb=start_memory(), memory_kind=memory_kind())  # peak growth from here
    if settings.method == "qlora":  # the model's size in float32, then in 4-bit: what QLoRA saves
        from .assets import resolve_model_source

        summary["footprint_float32_bytes"] = int(model.get_memory_footprint() if model is not None
                                                 else float32_footprint(resolve_model_source(settings.model)))
        if model is not None:
            model = quantize_4bit(model)
    if model is None:
        model, tokenizer = _load_model(settings)
    if settings.method == "qlora":
        summary["footprint_4bit_bytes"] = int(model.get_memory_footprint())
    tokenizer_report = stage3.configure_tokenizer(tokenizer, model)
    end_init = init_end_from_eos(model, tokenizer) if settings.end_from_eos else None
    tokenized = splits.map(lambda batch: stage3.tokenize_function(batch, tokenizer, settings.max_length),
                           batched=True, remove_columns=splits["train"].column_names,
                           desc="Running tokenizer on dataset")
    summary.update(tokenizer=tokenizer_report, end_init=end_init)
    return model, tokenizer, tokenized


def prepare_batches(settings: TrainSettings, stage4a: ModuleType, model, tokenizer, tokenized, summary: dict):
    """Stage 4A: the collator that makes batches with next-token labels, and the rows it will batch.

    Little compute on padding: stage 3 padded every row to ``max_length``; the padding is dropped again
    (``speed.drop_padding``), so stage 4A's collator pads each batch only to its longest recipe, and with
    ``group_by_length`` the batches hold recipes of similar length (``training_arguments`` orders them). Or,
    with ``packing`` where the model ``supports_packing``, a step's recipes go end to end in one row
    (``speed.packing_collator``). Returns ``(collator, tokenized)``; ``summary["packed"]`` says which.
    """
    collator = stage4a.make_collator(tokenizer)
    tokenized = drop_padding(tokenized)
    packed = bool(settings.packing) and supports_packing(model)
    if packed:
        collator = packing_collator()
    summary.update(packed=packed)
    return collator, tokenized


def add_lora(settings: TrainSettings, stage4b: ModuleType, model, tokenizer, summary: dict):
    """Stage 4B, first half: LoRA on the attention layers (or ``settings.target_modules``); the LoRA model back.

    ``stage4b.make_lora_config`` and ``stage4b.apply_lora`` put the adapter on ``model`` in place. With
    ``train_new_tokens`` the embedding rows stage 3 added (``[END]``) train too and are saved with the
    adapter (``speed.speed_up_trainable_tokens`` makes that cheap). The layers, the trainable count and the
    attention implementation go into ``summary``.
    """
    if settings.method == "full":  # no adapter: the model itself trains
        trainable = train_every_weight(model, stage4b.trainable_parameters)
        _print(f"full fine-tuning: all {trainable['trainable']:,} parameters train")
        summary.update(method="full", target_modules=None, trainable=trainable, new_token_rows=None,
                       attention=getattr(model.config, "_attn_implementation", None))
        return model
    if settings.method == "qlora":
        model = ready_for_4bit_training(model)
    target_modules = list(settings.target_modules or stage4b.attention_modules(model))
    config = stage4b.make_lora_config(settings.rank, settings.alpha, target_modules, settings.dropout)
    new_rows = _new_token_rows(model, tokenizer) if settings.train_new_tokens else None
    if new_rows and hasattr(config, "trainable_token_indices") and not config.trainable_token_indices:
        config.trainable_token_indices = new_rows
    if new_rows:
        speed_up_trainable_tokens()
    attention = getattr(model.config, "_attn_implementation", None)
    lora_model = stage4b.apply_lora(model, config)
    trainable = stage4b.trainable_parameters(lora_model)
    if settings.method == "qlora":
        trainable = counted_as_weights(lora_model, trainable)
    _print(f"LoRA r={settings.rank} alpha={settings.alpha} on {target_modules}: "
           f"{trainable['trainable']:,} of {trainable['total']:,} parameters train ({trainable['percent']:.2f} %)")
    summary.update(method=settings.method, target_modules=target_modules, trainable=trainable,
                   new_token_rows=new_rows, attention=attention)
    return lora_model


def training_arguments(settings: TrainSettings, stage4b: ModuleType, output_dir: Path, tokenized, summary: dict):
    """Stage 4B's ``make_training_args``, then what the lab needs of them; the training rows in their order.

    The lab's needs (``_enforce_lab_arguments``): tokens/s of real tokens, a checkpoint every ``eval_every``
    steps, no online trackers, fused AdamW on a GPU. With ``group_by_length`` (and no packing) the training
    rows are put in ``speed.length_grouped_order`` and the Trainer keeps that order. Returns
    ``(args, tokenized)``; the precision, the device and the sizes go into ``summary``.
    """
    learning_rate = settings.full_learning_rate if settings.method == "full" else settings.learning_rate
    args = stage4b.make_training_args(output_dir / CHECKPOINTS, batch_size=settings.batch_size,
                                      learning_rate=learning_rate, epochs=settings.epochs,
                                      max_steps=settings.max_steps, eval_every=settings.eval_every,
                                      seed=settings.seed)
    grouped = bool(settings.group_by_length) and not summary["packed"]
    _enforce_lab_arguments(args, settings, grouped=grouped)
    if grouped:
        lengths = [len(ids) for ids in tokenized["train"]["input_ids"]]
        tokenized["train"] = tokenized["train"].select(
            length_grouped_order(lengths, args.per_device_train_batch_size, settings.seed))
    summary.update(learning_rate=learning_rate,
                   n_train=len(tokenized["train"]), n_validation=len(tokenized["validation"]), bf16=bool(args.bf16),
                   device=str(args.device), group_by_length=grouped,
                   frozen_in_bf16=bool(args.bf16) and settings.frozen_in_bf16)
    return args, tokenized


def train_with_callbacks(settings: TrainSettings, stage4b: ModuleType, lora_model, tokenizer, tokenized, collator,
                         args, *, store: Store, run_id: str, output_dir: Path, resume: bool,
                         should_stop: Callable[[], bool], summary: dict):
    """Stage 4B's ``train``, with the ``MetricsCallback`` streaming to the store; ``(trainer, callback)`` back.

    With ``resume`` it goes on from the newest checkpoint (the store forgets the metrics logged after it).
    While it trains, the frozen weights sit in bfloat16 (``speed.FrozenInBf16``) and the loss is computed a
    slice at a time (``speed.ChunkedLoss``), as the settings say; the curve ends with a validation point at
    the last step. ``trainer`` is None when ``should_stop()`` said stop before the first step.
    """
    checkpoint = last_checkpoint(output_dir) if resume else None
    if resume:
        resumed_at = int(checkpoint.name.split("-")[-1]) if checkpoint else 0
        _print(f"resuming from {checkpoint}" if checkpoint else "no checkpoint yet: starting from the beginning")
        store.delete_metrics_after(run_id, resumed_at)
    callback = MetricsCallback(store, run_id, should_stop, summary=summary)
    if should_stop():
        callback.cancelled = True
        return None, callback
    collator = TrainingCollator(collator, callback)
    with FrozenInBf16(lora_model, enabled=bool(args.bf16) and settings.frozen_in_bf16), \
            ChunkedLoss(lora_model, enabled=settings.chunked_loss) as chunked:
        summary["chunked_loss"] = chunked.active
        trainer = stage4b.train(lora_model, tokenizer, tokenized["train"], tokenized["validation"], args,
                                callbacks=[callback], data_collator=collator,
                                resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        if not callback.cancelled and callback.last_eval_step != trainer.state.global_step:
            trainer.evaluate()  # the curve ends with a validation point at the last step
    # Mixed precision wrapped the model's forward in autocast; give the caller the plain model back,
    # so "after" is measured in float32 like "before".
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    return trainer, callback


def save_and_summarise(settings: TrainSettings, stage4b: ModuleType, model, lora_model, tokenizer, trainer,
                       callback, *, store: Store, run_id: str, output_dir: Path, summary: dict,
                       started: float, validation: tuple[list, list] | None = None) -> None:
    """Stage 4B's ``save_adapter`` (with the tokenizer and the settings), then how the run ended, in the store.

    The adapter goes to ``output_dir/adapter`` once at least one step ran, with the tokenizer (stage 5 needs
    the same ``[END]`` id) and ``training_settings.json`` (what was trained, on which base). The summary gets
    the final losses, tokens/s, the padding share and the time; the status becomes "finished" or "cancelled".
    Full fine-tuning saves the whole model to ``output_dir/model`` instead. A completed run then measures, the
    same for every method (``methods.final_measurements``): peak memory, held-out perplexity and stop rate on
    ``validation`` (its token rows and texts), and the bytes saved.
    """
    steps = trainer.state.global_step if trainer else 0
    if "memory_start_mb" in summary:
        summary["peak_memory_mb"] = peak_memory_growth(summary["memory_start_mb"])  # training's peak, not eval's
    full = settings.method == "full"
    saved_dir = output_dir / (SAVED_MODEL if full else ADAPTER)
    saved = ((save_full_model(lora_model, saved_dir) if full else stage4b.save_adapter(lora_model, saved_dir))
             if steps else None)
    if saved is not None:
        tokenizer.save_pretrained(saved_dir)  # with [END]: stage 5 needs the same token ids
        (saved_dir / SETTINGS_FILE).write_text(json.dumps(
            {"settings": asdict(settings), "base_model": getattr(model.config, "_name_or_path", ""),
             "steps": steps, "completed": not callback.cancelled}, indent=1, default=str))
    summary.update(steps=steps, total_steps=trainer.state.max_steps if trainer else summary.get("total_steps"),
                   train_loss=callback.train_loss, eval_loss=callback.eval_loss,
                   eval_perplexity=perplexity_from_loss(callback.eval_loss), tokens_per_s=callback.tokens_per_s,
                   tokens_seen=trainer.state.num_input_tokens_seen if trainer else 0,
                   padding_share=(1 - callback.batch_tokens["real"] / callback.batch_tokens["computed"]
                                  if callback.batch_tokens["computed"] else None),
                   seconds=time.perf_counter() - started, cancelled=callback.cancelled,
                   completed=bool(trainer) and not callback.cancelled,
                   adapter_dir=str(saved_dir) if saved and not full else None,
                   adapter_bytes=saved["bytes"] if isinstance(saved, dict) and not full else None,
                   model_dir=str(saved_dir) if saved and full else None,
                   saved_bytes=saved["bytes"] if isinstance(saved, dict) else None,
                   last_checkpoint=str(last_checkpoint(output_dir) or "") or None)
    if steps and not callback.cancelled and validation is not None:
        _print("measuring held-out perplexity and stop rate on the validation recipes")
        summary.update(final_measurements(lora_model, tokenizer, list(validation[0]), list(validation[1]),
                                          batch_size=settings.batch_size, prompts=settings.stop_rate_prompts,
                                          max_new_tokens=settings.max_length))
    status = "cancelled" if callback.cancelled else "finished"
    reason = (f"cancelled at step {steps}; resume continues from the last checkpoint"
              if callback.cancelled else "")
    store.update_run(run_id, status=status, reason=reason, summary=summary)
    _print(f"{status} after {steps} steps in {summary['seconds']:.0f} s; "
           f"train loss {callback.train_loss}, validation loss {callback.eval_loss}"
           + (f"; {'model' if full else 'adapter'} in {saved_dir}" if saved else ""))
