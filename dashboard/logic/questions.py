"""The assignment's analysis questions, two or three per stage.

Each asks the learner to look at their *own* results on the stage page and
explain them in a few sentences; the answers are saved in the lab's store
(``store.save_answer(stage, question.key, text)``) and count toward the
success tiers on Home.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Question:
    key: str = field(metadata={"help": "stable id saved with the answer; never renumber"})
    text: str = field(metadata={"help": "the question, in words"})
    look_at: str = field(default="", metadata={"help": "what on the page the answer should draw on"})


QUESTIONS: dict[str, list[Question]] = {
    "stage1": [
        Question("q1", "Type a recipe title with an unusual ingredient into the tokenizer explorer. Which words "
                       "became several tokens, and why would a tokenizer split rare words but keep common ones whole?",
                 "the tokenizer explorer"),
        Question("q2", "Read the base model's 'before' generations. Name two ways they are not yet a usable "
                       "recipe (format, stopping, content). Which of these do you expect fine-tuning to fix, "
                       "and which not?", "the 'before' generations"),
        Question("q3", "Almost all of the model's parameters are trainable today. Why would updating all "
                       "135 million of them on a few hundred recipes be risky, not just slow?",
                 "the parameter count"),
    ],
    "stage2": [
        Question("q1", "Which kinds of mess did your filter remove most often? Give one example of a raw "
                       "recipe you would still not want the model to learn from.", "the before/after chart"),
        Question("q2", "Why must the validation recipes never appear in training? What would the validation "
                       "loss tell you if they did?", "the split sizes"),
        Question("q3", "Every formatted recipe ends with [END]. What would a model trained without it do at "
                       "the end of a recipe?", "a formatted example"),
    ],
    "stage3": [
        Question("q1", "Look at the token-length histogram and the truncation line. What share of recipes is "
                       "cut, and what does the model never see for those recipes?", "the histogram"),
        Question("q2", "Padding tokens fill the short recipes. Why must the loss ignore them, and which part "
                       "of the tokenized batch makes that possible?", "the attention mask"),
        Question("q3", "Would you raise or lower max_length for this data? Weigh what you gain against the "
                       "memory and time it costs.", "the length statistics"),
    ],
    "stage4a": [
        Question("q1", "Which layers got the largest gradient norms on the first batch? What does a gradient "
                       "norm measure, in words?", "the gradient norms by layer"),
        Question("q2", "The loss of the untrained model on recipes is about ln(vocabulary size) or lower. "
                       "What would a loss of ln(49152) ≈ 10.8 mean about the model's guesses?",
                 "the first loss"),
        Question("q3", "After one optimizer step the loss on the same batch went down. Why is that not yet "
                       "evidence that the model learned to write recipes?", "the loss before and after the step"),
    ],
    "stage4b": [
        Question("q1", "How many parameters does LoRA train with your settings, as a share of the whole model? "
                       "How does that share change when you double the rank?", "the trainable-parameter count"),
        Question("q2", "Compare the training and validation loss curves of your run. Is there a point where "
                       "they part ways, and what would that mean?", "the live loss chart"),
        Question("q3", "Try two runs that differ in one setting only (epochs, rank or data size). Which change "
                       "helped validation loss most per minute of training?", "your runs"),
    ],
    "stage5": [
        Question("q1", "Report perplexity before and after fine-tuning. In words, what does a drop from the one "
                       "to the other mean about the model's next-token guesses?", "the perplexity chart"),
        Question("q2", "Compare a 'before' and an 'after' generation for the same prompt. What changed in "
                       "format, stopping and content? What did not change?", "before/after generations"),
        Question("q3", "Perplexity can improve while the recipes stay bad. Which other measure on this page "
                       "(format adherence, stop rate, memorisation, the off-topic probe) worries you most, and why?",
                 "the measures beyond perplexity"),
    ],
    "stage6": [
        Question("q1", "Move the temperature from 0.3 to 1.5. What happens to the next-token distribution, and "
                       "to the recipes? Why is dividing the logits by t the right operation?",
                 "the temperature chart"),
        Question("q2", "With top-p = 0.9, how many tokens remain candidates after 'INGREDIENTS:'? Why does "
                       "top-p keep the token that crosses p?", "the top-p chart"),
        Question("q3", "Which temperature and top-p would you ship for a recipe app, and what failure did you "
                       "see at the extremes?", "the sweep"),
    ],
    "stage7": [
        Question("q1", "What did cleaning remove from your own dataset, and which problem surprised you?",
                 "the cleaning report"),
        Question("q2", "Compare the base model, the recipe model and your own model on a prompt from your "
                       "domain. Which one is best, and is the difference in format or in content?",
                 "the comparison"),
        Question("q3", "How many examples did your dataset need before the fine-tuned model followed its "
                       "format? What would you collect next?", "your runs"),
    ],
}


def questions_for(stage_key: str) -> list[Question]:
    return QUESTIONS.get(stage_key, [])
