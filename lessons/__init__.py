"""LoRA Kitchen: the lesson modules a learner completes, and the engine they call.

Learner files: ``stage1_concepts.py`` … ``stage7_own_dataset.py`` (generated
from ``reference/``). Engine: ``lessons.engine``. Command line: ``python -m lessons``.
"""
import os

# No hub is reachable where LoRA Kitchen is built and taught; a classroom
# server uses its filled cache. Offline mode makes a missing model fail at once
# with a clear message instead of waiting on a network. LAB_ONLINE=1 allows downloads.
if os.environ.get("LAB_ONLINE") != "1":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
