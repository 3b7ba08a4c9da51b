from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage4a", "sets the collator up for masked language modelling (BERT-style), not next-token prediction",
            "DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)",
            "DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True)",
            caught_by="test_make_collator_is_causal"),
    Mistake("stage4a", "never zeroes the gradients, so the second step pushes with both steps' gradients",
            "    optimizer.zero_grad(set_to_none=True)\n", "",
            caught_by="test_training_step_matches_two_trusted_steps"),
    Mistake("stage4a", "compares each position's scores with its own token instead of the next one",
            "scores, targets = logits[:, :-1, :], labels[:, 1:]", "scores, targets = logits, labels", count=2,
            caught_by="test_loss_by_hand_matches_cross_entropy"),
    Mistake("stage4a", "averages the surprise over padding too",
            "loss = surprise.sum() / counted.sum()", "loss = surprise.mean()",
            caught_by="test_loss_by_hand_matches_cross_entropy"),
    Mistake("stage4a", "leaves the gradients behind after inspecting them",
            "    model.zero_grad(set_to_none=True)\n", "", caught_by="test_backward_and_inspect"),
]
