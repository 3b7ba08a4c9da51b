from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage1", "loads the model body without its language-model head",
            "AutoModelForCausalLM.from_pretrained(source)", "AutoModel.from_pretrained(source)",
            caught_by="test_load_model_and_tokenizer_from_a_folder"),
    Mistake("stage1", "returns the prompt together with the new text",
            "output[0, prompt_length:]", "output[0, :]", caught_by="test_generate_text_returns_only_new_text"),
    Mistake("stage1", "counts tensors instead of numbers",
            "total = sum(p.numel() for p in model.parameters())", "total = len(list(model.parameters()))", count=2,
            caught_by="test_count_parameters"),
    Mistake("stage1", "ignores the seed", "    if seed is not None:\n        torch.manual_seed(seed)\n", "",
            caught_by="test_generate_text_seed_repeats"),
    Mistake("stage1", "samples without passing temperature or top_p, so generate uses its own defaults",
            '{"do_sample": True, "temperature": temperature, "top_p": top_p}', '{"do_sample": True}',
            caught_by="test_generate_text_passes_temperature_and_top_p"),
    Mistake("stage1", "passes temperature but forgets top_p",
            '{"do_sample": True, "temperature": temperature, "top_p": top_p}',
            '{"do_sample": True, "temperature": temperature}',
            caught_by="test_generate_text_passes_temperature_and_top_p"),
    Mistake("stage1", "passes top_p but forgets temperature",
            '{"do_sample": True, "temperature": temperature, "top_p": top_p}', '{"do_sample": True, "top_p": top_p}',
            caught_by="test_generate_text_passes_temperature_and_top_p"),
    Mistake("stage1", "asks for Apple's MPS before CUDA",
            '    if torch.cuda.is_available():\n        return "cuda"\n'
            '    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():\n'
            '        return "mps"\n',
            '    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():\n'
            '        return "mps"\n'
            '    if torch.cuda.is_available():\n        return "cuda"\n',
            caught_by="test_pick_device_prefers_cuda"),
    Mistake("stage1", "slices the output one token early, so the prompt's last token comes back",
            "output[0, prompt_length:]", "output[0, prompt_length - 1:]",
            caught_by="test_generate_text_returns_only_new_text"),
    Mistake("stage1", "slices the output one token late, so the first new token is lost",
            "output[0, prompt_length:]", "output[0, prompt_length + 1:]",
            caught_by="test_generate_text_returns_only_new_text"),
    Mistake("stage1", "lets the tokenizer add its special tokens to the text",
            'ids = tokenizer(text, add_special_tokens=False)["input_ids"]', 'ids = tokenizer(text)["input_ids"]',
            caught_by="test_show_tokens_shows_the_texts_own_tokens_only"),
    Mistake("stage1", "decodes the model's end token into the text",
            "tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True)",
            "tokenizer.decode(output[0, prompt_length:])", caught_by="test_generate_text_hides_special_tokens"),
]
