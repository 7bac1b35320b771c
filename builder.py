"""The keypoint-instruct dataset as a ``datasets`` builder, at the repository root as the design card asks.

A thin entry point: the builder lives in :mod:`keypoint_instruct.dataset.builder` (the package never imports this
file). From Python, in the repository root::

    from builder import KeypointInstruct
    builder = KeypointInstruct(config_name="complex_reasoning", cache_dir="/tmp/kpi",
                               coco_root="coco", coco_split="train2017", cache_path="responses.sqlite")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")

``keypoint-instruct build`` writes the Hub-layout folder from it
(:func:`keypoint_instruct.dataset.folder.build_folder`).
"""

from keypoint_instruct.dataset.builder import KeypointInstruct, KeypointInstructConfig, features

__all__ = ["KeypointInstruct", "KeypointInstructConfig", "features"]
