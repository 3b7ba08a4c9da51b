"""The results area of each stage page: `draw(module, store)` draws what the learner's own code made."""
