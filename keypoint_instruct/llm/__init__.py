"""Stage 2a, the LLM layer: chat requests in, answers in a store out; knows nothing about COCO.

Takes :class:`~keypoint_instruct.llm.request.ChatRequest` objects (a chat body plus labels); gives answers stored
exactly once in the SQLite response store. ``request`` holds the types, ``providers`` send one request to an
OpenAI-compatible endpoint, ``store`` is every table of the cache file, ``online`` drives many requests under
concurrency, rate limits and a spend cap, ``batch`` goes through the OpenAI Batch API, ``pricing`` counts tokens
and money. Modelled on curator's split of request processors, without its base classes.
"""
