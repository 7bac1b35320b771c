"""Stage 4, training: a dataset folder or Hub repo in, a fine-tuned LLaVA checkpoint out.

What ``train_sft.py`` needs besides TRL: loading and checking the dataset and images, the image transform, freezing,
checkpoint key fixes, and the tiny random LLaVA used by tests, the demo and the device script.
"""
