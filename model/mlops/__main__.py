"""`python -m mlops`: what torchrun launches for multi-process training."""

from mlops.cli import main

main()
