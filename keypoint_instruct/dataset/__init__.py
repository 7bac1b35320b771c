"""Stage 3, the dataset: stored teacher answers in, a versioned Hub-layout dataset folder out.

Parses answers into pairs and descriptions, decides per pair what is kept and why the rest is dropped
(``decide.decide``: leaks, refusals, pose claims the keypoints disprove), shapes rows in TRL's conversational
vision format, runs the ``datasets`` builder per config, writes Parquet shards and the card, and pushes to the Hub.
"""
