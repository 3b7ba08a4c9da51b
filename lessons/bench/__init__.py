"""``python -m lessons bench``: the original assignment's training recipe against LoRA Kitchen's, side by side.

One invocation, one machine, identical data (the same training recipes, the
same held-out recipes, the same number of each):

* **baseline**: the original assignment as written: every recipe padded (and
  cut) to 256 tokens, batches of 4, float32, LoRA r=8 on q/v, lr 2e-4, ``[END]``
  added as a new special token with stage 3's resize and nothing more,
  transformers' ``Trainer``;
* **lab**: LoRA Kitchen's default training path, ``run_training`` with its
  default ``TrainSettings`` (whole recipes up to 768 tokens, batches grouped by
  length and padded only to their longest, bf16 autocast where the hardware
  has it with the frozen weights kept in bf16, no LoRA dropout, SDPA attention
  without a mask for right-padded batches (its causal path), the output layer
  and the loss a slice at a time (``ChunkedLoss``), fused AdamW on a GPU, lr
  5e-3, ``[END]`` started from the end-of-sequence row and trained).

Both are then measured the same way: held-out perplexity over whole recipes (no
truncation, padding never counted), and the stop rate: generations from a fixed
set of held-out recipe titles, sampled as the lab's side-by-side comparison
samples (temperature 0.7, top-p 0.95, seeded; eight per prompt, two with
``--quick``), up to 512 new tokens (room for 99 % of the real recipes; the share
that stopped within ``short_budget``, 320, comes from the same generations),
batched with the KV cache; a generation *stops* when it writes ``[END]``, and is
*complete* when it also wrote ``DIRECTIONS:`` before it. Beside it, the share of
the training recipes themselves that end within each budget: what a model
writing recipes exactly as long as the real ones would score. Greedy decoding is
reported too, up to 320 tokens (a small model decoded greedily loops).
Generation runs under bf16 autocast where the lab trains in bf16.

Around that it reports what else the lab made fast: the warm model load (the
safetensors cache), perplexity evaluation with and without padding waste,
generation batched with the KV cache vs one prompt at a time, and a ladder of
training-step timings that adds one piece at a time (``ladder_rungs``), and
the model arithmetic per second of both arms with, on a GPU whose peak it
knows, the share of that peak (``lessons/engine/flops.py``). The results go to the store
(``stage4b``/``bench``) for the dashboard's chart; the table's last line is
the ratio lab / baseline.

The package, one module a part, read in this order: ``settings`` (``BenchSettings``, ``--quick``),
``arms`` (the two training recipes), ``measurement`` (both arms measured alike, with the engine's
``lessons.engine.measure``), ``ladder`` (each piece's gain), ``table`` (the report), ``run``
(``run_bench``, in named phases) and ``cli`` (the command line, ``python -m lessons bench``).
"""
