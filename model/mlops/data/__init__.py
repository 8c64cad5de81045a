"""Data: the symbol corpus read from the Transformers source, question/passage pairs, versioned splits."""
