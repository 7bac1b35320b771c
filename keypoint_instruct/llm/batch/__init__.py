"""The OpenAI Batch API: submit requests as files, follow and collect the batches into the same store.

``commands`` runs each ``batch`` command (``submit``, ``collect`` with ``status``, ``cancel`` with ``forget``);
``endpoints`` chooses the endpoint each recorded batch is asked at; ``api`` is what they all share (the call
wrapper, its error line, the constants); ``recover`` settles submits killed mid-create; ``ingest`` stores a finished
batch's lines exactly once.
"""
