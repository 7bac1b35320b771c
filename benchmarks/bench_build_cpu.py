#!/usr/bin/env python
"""CPU time of a dataset build by two versions of the code, alternating, on copies of one response cache.

    git archive <commit> | tar -x -C /tmp/base
    .venv/bin/python benchmarks/bench_build.py --work /tmp/work          # makes /tmp/work/{coco,responses.sqlite}
    .venv/bin/python benchmarks/bench_build_cpu.py --base /tmp/base --work /tmp/work [--rounds 2]

On a shared machine the wall time of ``bench_build.py`` follows the other jobs' load; the CPU time of the build
process (``ru_utime + ru_stime`` from ``os.wait4``) much less. Each run builds into its own folder from its own copy
of the cache (a newer version may migrate the cache, which an older one then could not read).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = """
import sys
from keypoint_instruct.dataset.folder import build_folder
build_folder(coco_root=sys.argv[1], coco_split=sys.argv[4], cache_path=sys.argv[2], out=sys.argv[3],
             version="1.0.0", overwrite=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the code to compare against")
    parser.add_argument("--work", type=Path, required=True, help="bench_build.py's --work: coco/ + responses.sqlite")
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scratch = args.work / "cpu"
    scratch.mkdir(exist_ok=True)
    for round_ in range(args.rounds):
        for name, code in (("base", args.base), ("this", REPO)):
            cache = scratch / f"{name}.sqlite"
            shutil.copyfile(args.work / "responses.sqlite", cache)
            env = {**os.environ, "PYTHONPATH": str(code), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
            argv = [sys.executable, "-c", BUILD, str(args.work / "coco"), str(cache), str(scratch / name), args.split]
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            cpu = usage.ru_utime + usage.ru_stime
            print(
                f"{name} round {round_}: wall {wall:.1f} s, cpu {cpu:.1f} s, exit {os.waitstatus_to_exitcode(status)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
