"""Build a tiny random LLaVA-1.5 (model + processor + chat template) for tests and the demo.

Usage: python scripts/make_tiny_llava.py OUT_DIR [--seed N]
Offline, a few seconds on a CPU. The result loads with AutoModelForImageTextToText / AutoProcessor and trains with
train_sft.py exactly like llava-hf/llava-1.5-7b-hf, only small.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from keypoint_instruct.errors import KeypointInstructError
from keypoint_instruct.training.tiny_llava import build_tiny_llava


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write the model, tokenizer, image processor and chat template to")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)  # before the build: fail in a second, not after it
        out = build_tiny_llava(args.out_dir, seed=args.seed)
    except KeypointInstructError as err:
        print(f"make_tiny_llava: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # an out_dir that is a file, or under a folder that cannot be written
        print(f"make_tiny_llava: error: cannot write {args.out_dir}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
