"""Executor backends: kept as the import path executor_node and older code use; the code is in
:mod:`action_images_ros.ros.backends` (one module per backend)."""

from .backends import *  # noqa: F401,F403
from .backends import __all__  # noqa: F401
from .franka import FRANKA_ARM_GROUP, FRANKA_BASE_FRAME, FRANKA_GRIPPER_NS, FRANKA_TCP_LINK  # noqa: F401
