"""The policy runner: calibrated multi-view frames + pose + instruction -> a timed trajectory."""

from .runner import PolicyRunner, Prediction

__all__ = ["PolicyRunner", "Prediction"]
