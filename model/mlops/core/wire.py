"""The Triton model's wire contract, in one place: the model config declares it, the clients and the python
backend speak it.

A request carries ``QUESTION`` (one string per row) and optionally ``TOP_K`` (one int32 per row); the response's
``ANSWERS`` holds, per row, the JSON-encoded list of answers for that question.
"""

QUESTION = "QUESTION"
TOP_K = "TOP_K"
ANSWERS = "ANSWERS"
