"""Stage 4B checks: which layers LoRA adapts, the config, the wrapped model, the count, training, saving.

Fixed inputs only: a tiny Llama and a tiny GPT-2 with the real tokenizer (same
layer names as SmolLM2 and distilgpt2, a few million parameters, so a few
training steps take a second) and eight recipes from
``data/fixtures/formatted_recipes.jsonl`` tokenized here. The checks assert
LoRA's invariants: B starts at zero so the model is unchanged, only A and B
train, and only the attention layers are wrapped.
"""
import copy
import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import TrainerCallback, TrainingArguments

from checks.teacher import call, expect
from lessons.engine.errors import LabError
from lessons.engine.paths import DATA_DIR
from lessons.engine.tiny import tiny_gpt2

LLAMA_ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
LLAMA_MLP = {"gate_proj", "up_proj", "down_proj"}
# Short sequences and few recipes: enough for a real Trainer run that takes a second.
MAX_LENGTH = 32
N_RECIPES = 8


@pytest.fixture
def tokenized(tokenizer):
    """Eight fixture recipes, tokenized to MAX_LENGTH tokens, as a datasets.Dataset."""
    from datasets import Dataset

    lines = (DATA_DIR / "fixtures" / "formatted_recipes.jsonl").read_text().splitlines()[:N_RECIPES]
    texts = [json.loads(line)["text"] for line in lines]
    encoded = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding="max_length")
    return Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})


def trusted_lora(model, modules=("q_proj", "v_proj"), r=4):
    """LoRA put on by peft directly, so a check of one function never depends on another of yours."""
    return get_peft_model(model, LoraConfig(r=r, lora_alpha=8, target_modules=list(modules), lora_dropout=0.0,
                                            task_type="CAUSAL_LM"))


def wrapped_layers(model) -> list[str]:
    return [name for name, module in model.named_modules() if hasattr(module, "lora_A") and len(module.lora_A)]


def test_attention_modules_for_llama_and_gpt2(lesson, tiny_model, tokenizer):
    """attention_modules names the attention layers of a Llama (q_proj, v_proj) and of a GPT-2 (c_attn)."""
    got = call(lesson.attention_modules, tiny_model)
    expect(isinstance(got, (list, tuple)) and got and all(isinstance(n, str) for n in got), lesson.attention_modules,
           "it should return a list of layer names.", expected="['q_proj', 'v_proj']", got=got)
    names = set(got)
    expect(not names & LLAMA_MLP, lesson.attention_modules,
           "those are the MLP (feed-forward) layers of a Llama, not its attention.",
           expected="['q_proj', 'v_proj']", got=got,
           hint="Which of the module names hold queries, keys and values?")
    expect({"q_proj", "v_proj"} <= names <= LLAMA_ATTENTION, lesson.attention_modules,
           "for a Llama (SmolLM2) LoRA should adapt the query and value projections.",
           expected="['q_proj', 'v_proj']", got=got,
           hint="Print {name.split('.')[-1] for name, _ in model.named_modules()}: which are attention?")
    expect(names == {"q_proj", "v_proj"}, lesson.attention_modules,
           "for a Llama the docstring asks for the queries and values only, the LoRA paper's classic choice "
           "(460,800 trainable numbers for SmolLM2).",
           expected="['q_proj', 'v_proj']", got=got,
           hint="k_proj and o_proj are attention layers too: how many numbers would they add to train and save, "
                "and which two does the docstring's example name?")
    gpt2 = tiny_gpt2(tokenizer)
    got = call(lesson.attention_modules, gpt2)
    expect(isinstance(got, (list, tuple)) and set(got) == {"c_attn"}, lesson.attention_modules,
           "for a GPT-2 the attention's queries, keys and values live in one layer.", expected="['c_attn']", got=got,
           hint=("c_fc is GPT-2's MLP." if "c_fc" in (got or []) else
                 "Does your answer depend on the model's module names, or is it fixed for one architecture?"))
    plain = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    try:
        got = lesson.attention_modules(plain)
    except LabError:
        return
    except Exception:  # noqa: BLE001 - run it once more through call() for the learner's line
        call(lesson.attention_modules, plain)
        raise
    expect(False, lesson.attention_modules, "a model with neither c_attn nor q_proj and v_proj has no layers to "
           "name: the given line after your code raises a LabError that says so.",
           expected="LabError('Sequential has neither ...')", got=got,
           hint="Does each of your returns run only when the model really has those layers?")


def test_make_lora_config(lesson):
    """make_lora_config builds a causal-LM LoraConfig with the given rank, alpha, layers and dropout."""
    got = call(lesson.make_lora_config, 4, 32, ["q_proj", "v_proj"], 0.1)
    expect(isinstance(got, LoraConfig), lesson.make_lora_config, "it should return a peft LoraConfig.",
           expected="LoraConfig(...)", got=type(got).__name__)
    for field, want in (("r", 4), ("lora_alpha", 32), ("lora_dropout", 0.1)):
        expect(getattr(got, field) == want, lesson.make_lora_config, f"{field} is not the value passed in.",
               expected=want, got=getattr(got, field), hint="Are r, alpha and dropout passed to the right fields?")
    expect(set(got.target_modules or []) == {"q_proj", "v_proj"}, lesson.make_lora_config,
           "target_modules should be the layer names passed in.", expected=["q_proj", "v_proj"],
           got=got.target_modules)
    expect(str(got.task_type) in ("CAUSAL_LM", "TaskType.CAUSAL_LM"), lesson.make_lora_config,
           "the task type should be causal language modelling.", expected="TaskType.CAUSAL_LM", got=got.task_type,
           hint="Which TaskType predicts the next token?")


def test_apply_lora_wraps_the_attention_layers(lesson, tiny_model, tokenizer):
    """apply_lora wraps exactly the layers the config names, in every transformer block."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    got = call(lesson.apply_lora, tiny_model, config)
    expect(isinstance(got, PeftModel), lesson.apply_lora, "it should return the model wrapped by peft.",
           expected="a PeftModel", got=type(got).__name__, hint="Which peft function wraps a model with a LoraConfig?")
    wrapped = wrapped_layers(got)
    kinds = sorted({name.split(".")[-1] for name in wrapped})
    layers = tiny_model.config.num_hidden_layers
    expect(kinds == ["q_proj", "v_proj"] and len(wrapped) == 2 * layers, lesson.apply_lora,
           f"the wrapped layers should be q_proj and v_proj in each of the {layers} blocks.",
           expected=f"{2 * layers} layers: q_proj, v_proj", got=wrapped)
    gpt2 = call(lesson.apply_lora, tiny_gpt2(tokenizer),
                LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM"))
    wrapped = wrapped_layers(gpt2)
    expect(len(wrapped) == 2 and all(name.endswith("attn.c_attn") for name in wrapped), lesson.apply_lora,
           "on a GPT-2 with target_modules=['c_attn'], each block's c_attn should be wrapped.",
           expected="h.0.attn.c_attn, h.1.attn.c_attn", got=wrapped)


def test_lora_model_starts_as_the_base_model(lesson, tiny_model, tokenizer, tokenized):
    """Before training, the LoRA model gives exactly the base model's outputs: every B starts at zero."""
    batch = {name: torch.tensor(tokenized[:2][name]) for name in ("input_ids", "attention_mask")}
    with torch.no_grad():
        base_logits = tiny_model(**batch).logits
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    lora_model = call(lesson.apply_lora, tiny_model, config)
    lora_b = [p for name, p in lora_model.named_parameters() if "lora_B" in name]
    expect(lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b), lesson.apply_lora,
           "every lora_B should start at zero, so the model starts as the base model.",
           expected="lora_B all zeros", got=f"{len(lora_b)} lora_B tensors, some non-zero",
           hint="Did you change the adapters' initialisation?")
    lora_model.eval()
    with torch.no_grad():
        lora_logits = lora_model(**batch).logits
    expect(torch.allclose(lora_logits, base_logits, atol=1e-5), lesson.apply_lora,
           "the LoRA model's outputs differ from the base model's before any training.",
           expected="the same logits", got=f"largest difference {(lora_logits - base_logits).abs().max():.3g}")


def test_only_lora_weights_are_trainable(lesson, tiny_model):
    """After apply_lora only the LoRA matrices A and B train; every base weight is frozen."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    lora_model = call(lesson.apply_lora, tiny_model, config)
    trainable = [name for name, p in lora_model.named_parameters() if p.requires_grad]
    base = [name for name in trainable if "lora_" not in name]
    expect(not base, lesson.apply_lora, f"{len(base)} base weights are trainable: the base model must stay frozen.",
           expected="only lora_A and lora_B trainable", got=base[:4],
           hint="After get_peft_model, did something set requires_grad on the whole model?")
    expect(any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable), lesson.apply_lora,
           "the LoRA matrices themselves should be trainable.", expected="lora_A and lora_B trainable",
           got=trainable[:4])


def test_trainable_parameters(lesson, tiny_model, tokenizer):
    """trainable_parameters counts trainable and total numbers and the percent, r × (in + out) per layer."""
    lora_model = trusted_lora(tiny_model, r=4)
    hidden = tiny_model.config.hidden_size
    kv = tiny_model.config.num_key_value_heads * (hidden // tiny_model.config.num_attention_heads)
    want_trainable = tiny_model.config.num_hidden_layers * 4 * ((hidden + hidden) + (hidden + kv))
    total = sum(p.numel() for p in lora_model.parameters())
    got = call(lesson.trainable_parameters, lora_model)
    expect(isinstance(got, dict) and {"trainable", "total", "percent"} <= set(got), lesson.trainable_parameters,
           "it should return {'trainable', 'total', 'percent'}.",
           expected="{'trainable': ..., 'total': ..., 'percent': ...}", got=got)
    expect(got["trainable"] == want_trainable, lesson.trainable_parameters, "the trainable count is off.",
           expected=want_trainable, got=got["trainable"],
           hint="Count numbers (numel) of parameters with requires_grad.")
    expect(got["total"] == total, lesson.trainable_parameters, "the total count is off.", expected=total,
           got=got["total"], hint="The total counts every parameter, frozen or not.")
    percent = 100 * want_trainable / total
    expect(abs(got["percent"] - percent) < 1e-6, lesson.trainable_parameters, "the percent is off.",
           expected=percent, got=got["percent"], hint="A percent is 100 × part / whole.")
    gpt2 = trusted_lora(tiny_gpt2(tokenizer), modules=("c_attn",), r=4)  # GPT-2: n_embd, one c_attn for q, k, v
    width = gpt2.config.n_embd
    want_trainable = gpt2.config.n_layer * 4 * (width + 3 * width)
    got = call(lesson.trainable_parameters, gpt2)
    expect(isinstance(got, dict) and got.get("trainable") == want_trainable, lesson.trainable_parameters,
           "on a GPT-2 with LoRA on c_attn the trainable count is off.", expected=want_trainable,
           got=got.get("trainable") if isinstance(got, dict) else got,
           hint="Does your count read the model's parameters, or a config field only a Llama has?")


def test_make_training_args(lesson, tmp_path):
    """make_training_args sets batch size, learning rate, length, and evaluation every eval_every steps."""
    got = call(lesson.make_training_args, tmp_path / "run", batch_size=2, learning_rate=1e-3, max_steps=30,
               eval_every=5, seed=7)
    expect(isinstance(got, TrainingArguments), lesson.make_training_args, "it should return TrainingArguments.",
           expected="TrainingArguments(...)", got=type(got).__name__)
    wanted = {"output_dir": str(tmp_path / "run"), "per_device_train_batch_size": 2, "per_device_eval_batch_size": 2,
              "learning_rate": 1e-3, "max_steps": 30, "eval_steps": 5, "seed": 7}
    for field, want in wanted.items():
        expect(getattr(got, field) == want, lesson.make_training_args, f"{field} is not what was asked for.",
               expected=want, got=getattr(got, field), hint="Is each argument passed to its TrainingArguments field?")
    strategy = getattr(got.eval_strategy, "value", got.eval_strategy)
    expect(strategy == "steps", lesson.make_training_args,
           "the validation loss should be measured every eval_every steps.", expected="eval_strategy='steps'",
           got=strategy, hint="Without an eval_strategy, is eval_steps ever used?")
    expect(got.logging_steps == 1, lesson.make_training_args,
           "the training loss should be logged every step by default.", expected=1, got=got.logging_steps)
    expect(got.report_to in ([], None, "none", ["none"]), lesson.make_training_args,
           "the Trainer should not report to online trackers.", expected="report_to='none'", got=got.report_to)
    precision = lesson.precision_settings()
    expect(bool(got.bf16) == precision["bf16"], lesson.make_training_args,
           "bf16 should follow precision_settings() (on where it is faster on this machine).",
           expected=precision["bf16"], got=got.bf16, hint="Did you pass **precision on?")
    defaults = call(lesson.make_training_args, tmp_path / "defaults")
    expect(defaults.per_device_train_batch_size == 4 and defaults.learning_rate == 2e-4, lesson.make_training_args,
           "the defaults should be batch size 4 and learning rate 2e-4.", expected=(4, 2e-4),
           got=(defaults.per_device_train_batch_size, defaults.learning_rate))


class Recorder(TrainerCallback):
    """A callback that writes down what the Trainer tells it."""

    def __init__(self):
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


def test_train_updates_only_the_adapter(lesson, tiny_model, tokenizer, tokenized, tmp_path):
    """train runs the Trainer with your callbacks: the adapter learns, the base stays as it was."""
    lora_model = trusted_lora(tiny_model)
    base_before = {name: p.detach().clone() for name, p in lora_model.named_parameters() if "lora_" not in name}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, per_device_eval_batch_size=4,
                             learning_rate=1e-2, max_steps=4, logging_steps=1, eval_strategy="steps", eval_steps=2,
                             save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
                             use_cpu=not torch.cuda.is_available())
    recorder = Recorder()
    trainer = call(lesson.train, lora_model, tokenizer, tokenized, tokenized.select(range(4)), args,
                   callbacks=[recorder])
    expect(hasattr(trainer, "state") and trainer.state.global_step == 4, lesson.train,
           "it should return the Trainer after training max_steps steps.", expected="trainer.state.global_step == 4",
           got=getattr(getattr(trainer, "state", None), "global_step", trainer))
    train_logs = [log for log in recorder.logs if "loss" in log]
    eval_logs = [log for log in recorder.logs if "eval_loss" in log]
    expect(len(train_logs) == 4 and len(eval_logs) == 2, lesson.train,
           "the callbacks passed in should hear every logged loss and validation loss.",
           expected="4 training losses and 2 validation losses", got=f"{len(train_logs)} and {len(eval_logs)}",
           hint="Are the callbacks given to the Trainer? Is the eval_dataset?")
    lora_b = [p for name, p in lora_model.named_parameters() if "lora_B" in name]
    expect(any(torch.count_nonzero(p) > 0 for p in lora_b), lesson.train, "the LoRA matrices B did not change.",
           expected="lora_B no longer zero", got="still zero", hint="Was the LoRA model the one trained?")
    changed = [name for name, p in lora_model.named_parameters() if name in base_before
               and not torch.equal(p.detach(), base_before[name])]
    expect(not changed, lesson.train, "base weights changed: only the adapter may train.", expected="none changed",
           got=changed[:3])


def _embedding_tensors(adapter_file) -> list[str]:
    """The names of the embedding or output-layer tensors in a saved adapter file (none, for a LoRA adapter)."""
    from safetensors import safe_open

    with safe_open(str(adapter_file), framework="pt") as handle:
        return [name for name in handle.keys() if "embed_tokens" in name or "lm_head" in name]


def test_save_adapter_is_small_and_reloads(lesson, tiny_model, tokenizer, tmp_path):
    """save_adapter writes only the adapter (small), even after [END] grew the vocabulary, and it loads back."""
    # As in the lab: the base model was saved with 49,152 tokens, then stage 3 added [END] (one row more).
    # Seeing the vocabulary grown, peft would save the whole embedding table unless told not to.
    tiny_model.config.save_pretrained(tmp_path / "base")  # the config is enough for peft to compare
    tiny_model.name_or_path = str(tmp_path / "base")
    tiny_model.resize_token_embeddings(len(tokenizer) + 1, mean_resizing=False)
    fresh_base = copy.deepcopy(tiny_model)
    lora_model = trusted_lora(tiny_model)
    torch.manual_seed(1)
    with torch.no_grad():  # pretend training happened: B no longer zero
        for name, p in lora_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    call(lesson.save_adapter, lora_model, tmp_path / "adapter")
    folder = tmp_path / "adapter"
    files = {f.name: f.stat().st_size for f in folder.iterdir()} if folder.exists() else {}
    expect("adapter_config.json" in files and "adapter_model.safetensors" in files, lesson.save_adapter,
           "the folder should hold adapter_config.json and adapter_model.safetensors.",
           expected="adapter_config.json, adapter_model.safetensors", got=sorted(files),
           hint="Which object's save_pretrained writes an adapter: the PeftModel, or the merged base?")
    tables = _embedding_tensors(folder / "adapter_model.safetensors")
    expect(not tables, lesson.save_adapter,
           "the adapter file holds the whole embedding table too: the vocabulary grew by [END], so peft saved it.",
           expected="only lora_A and lora_B tensors", got=f"{tables}, {sum(files.values()) / 1e6:.1f} MB in all",
           hint="The docstring calls this the catch: which argument of save_pretrained keeps the embedding "
                "layers out?")
    base_bytes = sum(p.numel() * p.element_size() for p in fresh_base.parameters())
    expect(sum(files.values()) < base_bytes / 20, lesson.save_adapter, "the saved folder is as big as a whole model.",
           expected=f"well under {base_bytes / 20 / 1e6:.1f} MB", got=f"{sum(files.values()) / 1e6:.1f} MB",
           hint="Only A and B need saving; the base model is the same for everyone.")
    reloaded = PeftModel.from_pretrained(fresh_base, str(folder)).eval()
    batch = tokenizer(["RECIPE: Toast\nINGREDIENTS: bread"], return_tensors="pt")
    with torch.no_grad():
        want = lora_model.eval()(**batch).logits
        got = reloaded(**batch).logits
    expect(torch.allclose(got, want, atol=1e-5), lesson.save_adapter,
           "the saved adapter, loaded onto the base model, does not give the trained model's outputs.",
           expected="the same logits", got=f"largest difference {(got - want).abs().max():.3g}")
