"""Shared pytest set-up: an isolated ROS 2 graph for every test session.

Before anything imports rclpy, the session gets
* ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (no traffic leaves the machine),
* a random ``ROS_DOMAIN_ID`` in 100..200 (parallel sessions do not see each other; under
  ``pytest -n 2`` one pair per run, drawn from the run's id, a domain per worker),
* ``FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_shm.xml`` (shared-memory transport
  with a 32 MB segment: 3 x 640x480 rgb8 at 30 Hz arrives whole, DESIGN §3),
* ``RMW_IMPLEMENTATION=rmw_fastrtps_cpp`` (the profile is Fast DDS's),
* ``MUJOCO_GL=egl`` / ``PYOPENGL_PLATFORM=egl`` (headless rendering of the simulated cell).

``ros_context`` gives each test a fresh, initialised rclpy ``Context`` and shuts it down
afterwards; ``ros_context_factory`` makes more than one (nodes in separate DDS participants).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def _domain_id() -> int:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    if run is None:
        return random.SystemRandom().randint(100, 200)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return 100 + (int(run[:8], 16) % 25) * 4 + worker  # workers 0..3 of one run share no domain


os.environ["ROS_DOMAIN_ID"] = str(_domain_id())
if "PYTEST_XDIST_WORKER" in os.environ:  # `pytest -n 2`: one torch thread per worker, not 2 x 2 on 2 cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "fastdds_shm.xml")
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


@pytest.fixture
def ros_context_factory():
    """``make() -> rclpy.context.Context``: each call inits a new context; all are shut down after the test."""
    import rclpy
    from rclpy.context import Context

    contexts = []

    def make():
        ctx = Context()
        rclpy.init(context=ctx, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.try_shutdown()


@pytest.fixture
def ros_context(ros_context_factory):
    """A fresh initialised rclpy Context for this test (shut down afterwards)."""
    return ros_context_factory()
