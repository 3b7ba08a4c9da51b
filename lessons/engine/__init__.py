"""The engine: everything the lessons call but the learner does not write.

Paths and the lab's home folder, the embedded model and recipes, the store,
the TODO/blank runtime of the learner files and the generator that makes them,
tiny models for the checks, and the pipeline an instructor runs.
"""
