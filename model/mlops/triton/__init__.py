"""Triton Inference Server: launch the real binary, render model configs, the python-backend adapter, a client."""
