from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage3", "tokenizes without truncation",
            'examples["text"], truncation=True', 'examples["text"], truncation=False',
            caught_by="test_tokenize_function_pads_and_truncates"),
    Mistake("stage3", "configure_tokenizer never sets a pad token",
            "    if pad_was_missing:\n        tokenizer.pad_token = tokenizer.eos_token\n", "",
            caught_by="test_configure_tokenizer_sets_a_missing_pad_token"),
    Mistake("stage3", "adds [END] as an ordinary token instead of a special one",
            'tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)',
            "tokenizer.add_tokens([END_MARKER])",
            caught_by="test_end_marker_is_one_special_token"),
    Mistake("stage3", "never resizes the model's embeddings for the new token",
            "    model.resize_token_embeddings(len(tokenizer))\n", "",
            caught_by="test_configure_tokenizer_resizes_embeddings"),
    Mistake("stage3", "pads to the longest text of the batch instead of max_length",
            'padding="max_length", max_length=max_length)', "padding=True, max_length=max_length)",
            caught_by="test_attention_mask_marks_padding"),
    Mistake("stage3", "measures lengths after truncation, so no recipe ever looks too long",
            'lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]',
            'lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]',
            count=2, caught_by="test_token_length_stats"),
]
