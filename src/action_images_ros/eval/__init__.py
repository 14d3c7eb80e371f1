"""Evaluation: the closed loop in the simulated cell (through the one executor of ``control/``)."""
