"""The ROS 2 environment the ROS benches run in (as test/conftest.py sets it for the tests): a random
domain, localhost discovery only, the project's shared-memory Fast DDS profile."""

from __future__ import annotations

import os
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def set_ros_env() -> None:
    """Set the variables (those already set by the caller are kept, except the discovery range)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(100, 200)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
