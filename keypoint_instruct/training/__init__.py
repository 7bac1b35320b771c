"""Stage 4, training: a dataset folder or Hub repo in, a fine-tuned LLaVA checkpoint out.

What ``train_sft.py`` needs besides TRL, one job per module: ``recipe`` (its command line: ScriptArguments, the
recipe parser, number checks, one-line errors), ``data`` (dataset configs loaded, mixed and checked), ``images``
(image loading, pad-to-square, image files checked), ``chat_template`` (found and checked), ``checkpoints`` (resume,
canonical key names), ``parity`` (LLaVA-1.5's loss averaging, batches and attention, and the effective settings),
``tokenizer`` (the processor, with LLaVA-1.5's prompt tokenization), ``sft`` (the SFTTrainer put together),
``upstream`` (every workaround that touches library internals), and ``tiny_llava`` (the tiny random LLaVA of the
tests, the demo and the device script).
"""
