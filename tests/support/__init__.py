"""Helpers the tests share (servers, rendered manifests, Dockerfile replay, builders of API answers); never tests."""
