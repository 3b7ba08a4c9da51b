from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage4b", "puts LoRA on a Llama's MLP (gate/up/down projections) instead of its attention",
            'return ["q_proj", "v_proj"]', 'return ["gate_proj", "up_proj", "down_proj"]',
            caught_by="test_attention_modules_for_llama_and_gpt2"),
    Mistake("stage4b", "puts LoRA on GPT-2's MLP (c_fc) instead of its attention (c_attn)",
            'return ["c_attn"]', 'return ["c_fc"]', caught_by="test_attention_modules_for_llama_and_gpt2"),
    Mistake("stage4b", "hard-codes Llama's layer names, whatever the architecture",
            '    if "c_attn" in names:\n        return ["c_attn"]\n', "",
            caught_by="test_attention_modules_for_llama_and_gpt2"),
    Mistake("stage4b", "leaves every base weight trainable (the 'does not require grad' error 'fixed' the wrong way)",
            "    return lora_model\n", "    lora_model.requires_grad_(True)\n    return lora_model\n",
            caught_by="test_only_lora_weights_are_trainable"),
    Mistake("stage4b", "reports the trainable share out of 1, not out of 100",
            '"percent": 100 * trainable / total', '"percent": trainable / total',
            caught_by="test_trainable_parameters"),
    Mistake("stage4b", "saves the whole model with the adapter merged in, not the adapter",
            "model.save_pretrained(path, save_embedding_layers=False)",
            "model.merge_and_unload().save_pretrained(path)",
            caught_by="test_save_adapter_is_small_and_reloads"),
    Mistake("stage4b", "never passes the callbacks to the Trainer, so the dashboard hears nothing",
            "callbacks=list(callbacks))", ")", caught_by="test_train_updates_only_the_adapter"),
]
MISTAKES += [
    Mistake("stage4b", "puts LoRA on all four of a Llama's attention projections (q, k, v, o), not q and v",
            'return ["q_proj", "v_proj"]', 'return ["q_proj", "k_proj", "v_proj", "o_proj"]',
            caught_by="test_attention_modules_for_llama_and_gpt2"),
    Mistake("stage4b", "saves without save_embedding_layers=False, so the grown embedding table goes in too",
            "model.save_pretrained(path, save_embedding_layers=False)", "model.save_pretrained(path)",
            caught_by="test_save_adapter_is_small_and_reloads"),
]
