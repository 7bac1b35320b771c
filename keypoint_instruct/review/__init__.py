"""Stage 3b, review: look at a pilot run before paying for the whole one.

``keypoint-instruct review`` writes a static folder (``index.html`` + pictures) showing, per image, the picture as
``show`` draws it, the context the teacher saw and every answer with what the build does with it (kept, or dropped
with its reason code and the spans that made it so). ``decision`` is the one adapter to the dataset stage's rules,
``collect`` reads and samples the cache, ``pictures`` draws, ``sections`` and ``page`` write HTML; ``html`` holds the
helpers the HPAUB report page (``bench.report_html``) shares.
"""
