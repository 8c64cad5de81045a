"""Question answering over the Hugging Face Transformers codebase: the ML system behind the deployment repo."""
