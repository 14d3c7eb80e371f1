"""The harness's own safety arithmetic (``ros/safety_watch.command_problem``), against hand-computed cases."""

import numpy as np
import pytest

from action_images_ros.control.safety import SafetyConfig

pytestmark = pytest.mark.ros

CFG = SafetyConfig(workspace_min=(0.25, -0.35, 0.005), workspace_max=(0.85, 0.35, 0.6), max_translation_m=0.05,
                   max_rotation_deg=15.0)
HERE = np.array([0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, 1.0])


def rot_z(deg):
    h = np.radians(deg) / 2
    return [0.0, 0.0, np.sin(h), np.cos(h)]


@pytest.mark.parametrize("command, expect", [
    ([0.53, 0.04, 0.3, 0, 0, 0, 1, 1], None),  # 5.0 cm: at the limit
    ([0.54, 0.04, 0.3, 0, 0, 0, 1, 1], "m from the measured pose"),  # 5.66 cm
    ([0.5, 0.0, 0.3, *rot_z(14.0), 1], None),
    ([0.5, 0.0, 0.3, *rot_z(16.0), 1], "deg from the measured pose"),
    ([0.5, 0.0, 0.3, *rot_z(-16.0), 1], "deg from the measured pose"),
    ([0.9, 0.0, 0.3, 0, 0, 0, 1, 1], "outside the workspace box"),
    ([0.5, 0.0, np.nan, 0, 0, 0, 1, 1], "non-finite"),
    ([0.5, 0.0, 0.3, 0, 0, 0, 2.0, 1], "quaternion of norm"),
])
def test_command_problem(command, expect):
    from action_images_ros.ros.safety_watch import command_problem

    problem = command_problem(np.asarray(command, float), HERE, CFG)
    assert (problem is None) if expect is None else (expect in problem), problem


def test_without_a_reference_only_the_absolute_checks_apply():
    from action_images_ros.ros.safety_watch import command_problem

    assert command_problem(np.r_[0.8, 0.3, 0.5, 0, 0, 0, 1, 1], None, CFG) is None
    assert "outside" in command_problem(np.r_[0.8, 0.3, 0.001, 0, 0, 0, 1, 1], None, CFG)
