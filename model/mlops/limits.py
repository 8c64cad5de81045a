"""Limits on user input, shared by `mlops ask` and the HTTP API (kept free of heavy imports: the API
process must not load torch or MLflow just to validate a question)."""

MAX_QUESTION_CHARS = 2000
