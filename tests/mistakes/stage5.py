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
MISTAKES += [
    Mistake("stage5", "format_adherence finds the labels anywhere, not at the start of a line",
            'found = re.search(rf"(?m)^[ \\t]*{re.escape(label)}", text[position:])',
            "found = re.search(re.escape(label), text[position:])",
            caught_by="test_format_adherence"),
    Mistake("stage5", "compare_models seeds once for both models, so the fine-tuned one draws other numbers",
            '    result = {"prompt": prompt}\n'
            '    for name, model in (("base", base), ("finetuned", finetuned)):\n'
            '        inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)\n'
            '        prompt_length = inputs["input_ids"].shape[1]\n'
            '        torch.manual_seed(seed)\n',
            '    result = {"prompt": prompt}\n'
            '    torch.manual_seed(seed)\n'
            '    for name, model in (("base", base), ("finetuned", finetuned)):\n'
            '        inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)\n'
            '        prompt_length = inputs["input_ids"].shape[1]\n',
            caught_by="test_compare_models_gives_both_the_same_seed"),
    Mistake("stage5", "perplexity as the mean of the batch means (the lesson's mistake 3)",
            'ignore_index=IGNORE_INDEX, reduction="sum").item()\n'
            '            total_tokens += int((targets != IGNORE_INDEX).sum())',
            'ignore_index=IGNORE_INDEX, reduction="mean").item()\n'
            '            total_tokens += 1',
            caught_by="test_perplexity_ignores_padding"),
    Mistake("stage5", "memorised_titles reads 'at least NEAR_COPY_SIMILARITY' as 'more than'",
            "if best_ratio >= NEAR_COPY_SIMILARITY:", "if best_ratio > NEAR_COPY_SIMILARITY:",
            caught_by="test_memorised_titles"),
    Mistake("stage5", "memorised_titles keeps the last training title that passes the quick ratios, not the closest",
            "                if ratio > best_ratio:\n                    best_title, best_ratio = original, ratio\n",
            "                best_title, best_ratio = original, ratio\n", caught_by="test_memorised_titles"),
    Mistake("stage5", "perplexity lets math.exp overflow instead of giving float('inf')",
            '    try:\n        result = math.exp(mean_loss)\n    except OverflowError:\n        result = float("inf")\n',
            "    result = math.exp(mean_loss)\n", caught_by="test_perplexity_that_overflows_is_infinite"),
    Mistake("stage5", "memorised_titles stops at the first title with no letters", "        if not normalised:\n"
            "            continue\n", "        if not normalised:\n            break\n", caught_by="test_memorised_titles"),
    Mistake("stage5", "off_topic_probe samples instead of generating greedily",
            "max_new_tokens=max_new_tokens, do_sample=False,\n                                pad_token_id=tokenizer"
            ".pad_token_id)\n    answer", "max_new_tokens=max_new_tokens, do_sample=True,\n"
            "                                pad_token_id=tokenizer.pad_token_id)\n    answer",
            caught_by="test_off_topic_probe"),
    Mistake("stage5", "compare_models generates greedily at every temperature",
            'sampling = {"do_sample": True, "temperature"', 'sampling = {"do_sample": False, "temperature"',
            caught_by="test_compare_models_gives_both_the_same_seed"),
]
