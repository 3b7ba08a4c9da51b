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
MISTAKES += [
    Mistake("stage4a", "never puts the model in training mode, so dropout stays off",
            "    model.train()\n    loss = forward_loss(model, batch)\n", "    loss = forward_loss(model, batch)\n",
            caught_by="test_training_step_trains_in_training_mode"),
    Mistake("stage4a", "hands the title column to the collator too",
            "    return collator([{name: example[name] for name in MODEL_INPUTS if name in example} "
            "for example in examples])\n",
            "    return collator(examples)\n", caught_by="test_first_batch"),
    Mistake("stage4a", "shifts the logits but not the labels: each position is compared with its own token",
            "scores, targets = logits[:, :-1, :], labels[:, 1:]", "scores, targets = logits[:, :-1, :], labels[:, :-1]",
            count=2, caught_by="test_loss_by_hand_matches_cross_entropy"),
    Mistake("stage4a", "shifts the wrong way: the scores at t are compared with the token at t - 1",
            "scores, targets = logits[:, :-1, :], labels[:, 1:]", "scores, targets = logits[:, 1:, :], labels[:, :-1]",
            count=2, caught_by="test_loss_by_hand_matches_cross_entropy"),
    Mistake("stage4a", "scores padding as token 0 instead of leaving it out",
            "    surprise = torch.where(counted, -picked, torch.zeros_like(picked))\n    loss = surprise.sum() / counted.sum()\n",
            "    surprise = -picked\n    loss = surprise.mean()\n",
            caught_by="test_loss_by_hand_matches_cross_entropy"),
]
