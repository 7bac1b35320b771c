"""`make demo` is the README's first command: run its script end to end, as a user would, and read what it leaves.

Every other test drives one stage; this one catches what only the whole chain shows, such as a step that names a
split the earlier steps never made (the demo once reviewed `train2017` after its data moved to `train2014`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_leaves_what_it_promises(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "scripts/demo.sh", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr

    # the review page and the report it names at the end, both static pages with their pictures
    assert f"review page:  {out}/review/index.html" in done.stdout
    assert f"HPAUB report: {out}/hpaub_report/report.html" in done.stdout
    review = (out / "review" / "index.html").read_text(encoding="utf-8")
    assert "<img" in review and list((out / "review" / "images").iterdir())
    assert "tiny-llava-kpi" in (out / "hpaub_report" / "report.html").read_text(encoding="utf-8")

    # the dataset folder has the four configs, the benchmark shares no image with it, training saved a model
    configs = sorted(p.name for p in (out / "dataset").iterdir() if p.is_dir())
    assert configs == ["all", "complex_reasoning", "conversation", "detailed_description"]
    meta = json.loads((out / "hpaub" / "meta.json").read_text(encoding="utf-8"))
    assert meta["coco_split"] == "val2014"
    assert list((out / "tiny-llava-kpi").glob("*.safetensors"))
    for name in ("tiny-llava", "tiny-llava-kpi"):
        result = json.loads((out / f"result_{name}.json").read_text(encoding="utf-8"))
        assert result, name
