"""Stage 1, COCO: annotation files in, scenes and what is said about them out.

Takes ``annotations/{captions,instances,person_keypoints}_<split>.json`` (decoded by msgspec, checked in Python); gives
:class:`~keypoint_instruct.coco.annotations.Scene` objects, the teacher's context text in the paper's format, the
pose facts derived from the keypoints, Fig. 1-style pictures, and seeded synthetic COCO trees. Pure Python over the
annotations: nothing here calls a model.
"""
