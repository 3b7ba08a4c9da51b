from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage5", "perplexity computed over padding tokens too",
            "labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)", "labels = input_ids", count=2,
            caught_by="test_perplexity_ignores_padding"),
    Mistake("stage5", "perplexity as exp of the summed loss",
            "mean_loss = total_loss / max(total_tokens, 1)", "mean_loss = total_loss",
            caught_by="test_perplexity_of_a_model_that_knows_nothing"),
    Mistake("stage5", "adds up each batch's mean loss, then divides by the token count",
            'ignore_index=IGNORE_INDEX, reduction="sum")', 'ignore_index=IGNORE_INDEX, reduction="mean")',
            caught_by="test_perplexity_ignores_padding"),
    Mistake("stage5", "wraps the caller's base model itself, so the base changes too",
            "base_copy = copy.deepcopy(base)", "base_copy = base",
            caught_by="test_load_finetuned_puts_the_adapter_on_the_base"),
    Mistake("stage5", "stops only on the [END] token id, never on the text '[END]'",
            "pad_token_id=tokenizer.pad_token_id, stop_strings=[END_MARKER],\n"
            "                                    tokenizer=tokenizer, ",
            "pad_token_id=tokenizer.pad_token_id, ",
            caught_by="test_compare_models_stops_at_the_end_text"),
]
