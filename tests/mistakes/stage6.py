from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage6", "temperature multiplied instead of divided",
            "return logits / temperature", "return logits * temperature",
            caught_by="test_apply_temperature_matches_transformers"),
    Mistake("stage6", "a nucleus that drops the token which crosses p",
            "sorted_remove = (cumulative - sorted_probs) >= p", "sorted_remove = cumulative > p",
            caught_by="test_top_p_filter_edge_cases"),
    Mistake("stage6", "p = 1 left to floating-point luck, so the tail of nearly impossible tokens is dropped",
            "    if p >= 1.0:\n        return logits.clone()", "    if False:\n        pass",
            caught_by="test_top_p_filter_edge_cases"),
    Mistake("stage6", "top-p applied before temperature",
            "filtered = top_p_filter(apply_temperature(logits, temperature), top_p)",
            "filtered = apply_temperature(top_p_filter(logits, top_p), temperature)",
            caught_by="test_sample_next_token"),
    Mistake("stage6", "drops the KV cache, so each step sees only the newest token",
            "past_key_values = outputs.past_key_values  # the keys and values of every token so far",
            "past_key_values = None",
            caught_by="test_generate_custom_recipe_is_greedy_with_a_cache"),
    Mistake("stage6", "stops only on the [END] token id, never on the text '[END]'",
            "if token == end_id or END_MARKER in tokenizer.decode(new_ids[-8:]):", "if token == end_id:",
            caught_by="test_generate_custom_recipe_stops_at_the_end"),
]
MISTAKES += [
    Mistake("stage6", "the loop never passes top_p on, so every draw uses the whole vocabulary",
            "token = sample_next_token(next_logits, temperature=temperature, top_p=top_p, generator=generator)",
            "token = sample_next_token(next_logits, temperature=temperature, generator=generator)",
            caught_by="test_generate_custom_recipe_uses_temperature_and_top_p"),
    Mistake("stage6", "the loop runs the model with gradients on (no torch.no_grad)",
            "    with torch.no_grad():\n        for _ in range(max_new_tokens):",
            "    if True:\n        for _ in range(max_new_tokens):",
            caught_by="test_generate_custom_recipe_is_greedy_with_a_cache"),
]
