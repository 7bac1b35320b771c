"""HPAUB, the Human Pose and Action Understanding Benchmark: build, answer, judge, report.

``layout`` (the benchmark folder and answers file) -> ``build`` (images, teacher questions and references) ->
``answer`` (hf or openai backend) -> ``judge`` (rubric prompts, score parsing, retry once, exclusions; ``overlap``
is the offline stand-in judge) -> ``report`` (paper-scale and relative scores, bootstrap intervals, tables, chart).
Teacher and judge calls go through ``calls`` (the project's engine and response cache).
"""
