"""How fast the chat answers on this machine: ``python -m dashboard.logic.chat_bench``.

For each model (the embedded base model, and the base with a LoRA adapter on q/v as a
finished run saves one — untrained: speed does not depend on what the weights learned)
it answers the same three requests twice, interleaved: once streamed as the Chat page does
(``chat.answer``: streamer, [END] stop string, generation in a thread) and once with a
plain ``model.generate`` of the same length, same seed. It prints seconds to the first
piece, tokens per second (medians), and the streamed/plain ratio, which is what a timing claim here
may rest on (one run, one machine); on a shared machine the absolute numbers move.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

REQUESTS = ["tomato soup", "banana pancakes", "lentil curry"]


def plain_tokens_per_s(model, tokenizer, prompt: str, max_new_tokens: int, seed: int) -> float:
    """Tokens per second of a bare sampled ``generate`` that never stops early (no streamer, no stop string)."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    outputs = []

    def generate() -> None:
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs.append(model.generate(**inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                          do_sample=True, temperature=0.8, top_p=0.9,
                                          pad_token_id=tokenizer.pad_token_id))

    # In a thread of its own, as the chat's generate runs: torch's thread pool differs between the main thread
    # and others, and on a busy CPU that alone changed the speed many times over (docs/chat.md).
    started = time.perf_counter()
    worker = threading.Thread(target=generate)
    worker.start()
    worker.join()
    return (outputs[0].shape[1] - inputs["input_ids"].shape[1]) / (time.perf_counter() - started)


def untrained_adapter(folder: Path) -> Path:
    """A LoRA adapter (r=8 on q_proj/v_proj, [END] added) on the embedded model, saved as a run saves one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lessons.engine.assets import resolve_model_source
    from lessons.engine.constants import END_MARKER

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(None))
    tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_source(None))
    model.resize_token_embeddings(len(tokenizer))
    get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                     task_type="CAUSAL_LM")).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def bench(max_new_tokens: int = 100, seed: int = 0) -> list[dict]:
    from dashboard.logic import chat

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        specs = {"base": None, "base + LoRA r=8 (q, v)": {"adapter": str(untrained_adapter(Path(scratch) / "a"))}}
        for name, spec in specs.items():
            model, tokenizer = chat.load_chat_model(spec)
            settings = chat.ChatSettings(max_new_tokens=max_new_tokens, seed=seed)
            chat.answer(model, tokenizer, chat.recipe_prompt("toast"), chat.ChatSettings(max_new_tokens=5))  # warm-up
            streamed, plain, first, lengths = [], [], [], []
            for request in REQUESTS:
                reply = chat.answer(model, tokenizer, chat.recipe_prompt(request), settings)
                streamed.append(reply.tokens_per_s)
                first.append(reply.first_piece_s)
                lengths.append(reply.new_tokens)  # shorter than the limit where the model wrote [END] or its end
                plain.append(plain_tokens_per_s(model, tokenizer, chat.recipe_prompt(request), max_new_tokens, seed))
            rows.append({"model": name, "device": chat.chat_device(), "first piece s": statistics.median(first),
                         "tokens": statistics.median(lengths),
                         "streamed tok/s": statistics.median(streamed), "plain tok/s": statistics.median(plain),
                         "streamed / plain": statistics.median(streamed) / statistics.median(plain)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboard.logic.chat_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-new-tokens", type=int, default=100, help="tokens per answer (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed (default 0)")
    arguments = parser.parse_args(argv)
    print("| model | device | answer tokens | first piece (s) | streamed tok/s | plain generate tok/s "
          "| streamed / plain |")
    print("|---|---|---|---|---|---|---|")
    for row in bench(arguments.max_new_tokens, arguments.seed):
        print(f"| {row['model']} | {row['device']} | {row['tokens']:g} | {row['first piece s']:.2f} | "
              f"{row['streamed tok/s']:.1f} | "
              f"{row['plain tok/s']:.1f} | {row['streamed / plain']:.2f} |")


if __name__ == "__main__":
    main()
