"""The policy runner: calibrated multi-view frames + pose + instruction -> a timed trajectory."""

from .runner import PolicyRunner, Prediction, prediction_seed

__all__ = ["PolicyRunner", "Prediction", "prediction_seed"]
