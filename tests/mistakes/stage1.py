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
]
