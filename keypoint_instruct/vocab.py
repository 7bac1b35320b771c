"""The project's vocabulary: task names, context modes and the default models, defined once.

Every module, CLI choice, recipe check and card imports these names from here.
"""

from __future__ import annotations

# The three kinds of instruction data (the paper's), in the order the pipeline, the dataset and HPAUB use them.
TASKS = ("conversation", "detailed_description", "complex_reasoning")
ALL = "all"  # the three tasks together: a `--task` choice and the dataset's default config
TASK_CHOICES = (*TASKS, ALL)
DATASET_CONFIGS = (*TASKS, ALL)

# How a scene is written for the teacher: the paper's context, or with pose notes after it.
CONTEXT_MODES = ("paper", "paper+facts")
DEFAULT_CONTEXT_MODE = "paper"

TEACHER_MODEL = "gpt-4o-2024-08-06"  # the pinned snapshot the paper's data was made with
JUDGE_MODEL = "gpt-4o-2024-08-06"  # HPAUB's judge
OFFLINE_TEACHER_MODEL = "offline-posefacts"  # the deterministic teacher (no key), clearly named wherever it appears
OFFLINE_JUDGE_MODEL = "offline-overlap"  # the deterministic lexical-overlap judge
