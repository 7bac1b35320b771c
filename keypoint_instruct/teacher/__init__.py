"""Stage 2b, the teacher: scenes and prompt templates in, teacher requests out.

Takes scenes (:mod:`keypoint_instruct.coco`) and the prompt data files under ``teacher/prompts/``; gives
:class:`~keypoint_instruct.llm.request.ChatRequest` objects for the LLM layer, the plan of a run (``plan``: which
requests a selection gives, what a response cache leaves to send, the cost checks before sending), and the offline
teacher (``offline-posefacts``) that answers them without a key.
"""
