"""Failure modes read from an episode's trace."""

import numpy as np

from action_images_ros.eval.failure_modes import FAILURE_MODES, EpisodeTrace, classify_failure, count_modes
from action_images_ros.eval.probes import swap_colour_words

HALF = 0.02


def _trace(tcp, objects, held, grip, conf=(0.9,)):
    tr = EpisodeTrace()
    for i in range(len(tcp)):
        tr.add_tick({"tcp": tcp[i], "objects": {k: v[i] for k, v in objects.items()}, "held": held[i]}, grip[i])
    for c in conf:
        tr.add_prediction([c, 1.0])
    return tr


def _cube_episode(cube_z, held, grip, cube_xy=(0.5, 0.0), target=None):
    n = len(cube_z)
    cube = np.array([[cube_xy[0], cube_xy[1], z] for z in cube_z])
    objects = {"object": cube}
    if target is not None:
        objects["target"] = np.tile(target, (n, 1))
    return _trace(cube + [0, 0, 0.01], objects, held, grip)


def classify(tr, stats=None, success=False):
    return classify_failure(tr, stats or {"refused": 0}, success, min_confidence=0.2)


def test_each_mode_from_its_trace():
    z0 = [HALF] * 6
    up = [HALF, HALF, 0.05, 0.08, 0.08, 0.08]
    # the gripper closed but the cube never left the table
    assert classify(_cube_episode(z0, [0, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0])) == "missed_grasp"
    # it never even closed
    assert classify(_cube_episode(z0, [0] * 6, [1] * 6)) == "timeout"
    # lifted, then it slipped out of the closed gripper and fell
    fell = [HALF, HALF, 0.05, 0.08, 0.04, HALF]
    tr = _cube_episode(fell, [0, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0])
    assert classify(tr) == "dropped_object"
    facts = tr.facts()
    assert facts["gripper_closed"] and facts["held_ticks"] == 3 and facts["object_lift_max_m"] == 0.06
    # still carrying at the end
    assert classify(_cube_episode(up, [0, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0])) == "timeout"
    # placed: released (gripper opened) but not where it should be
    rel = _cube_episode([HALF, 0.05, 0.05, HALF, HALF, HALF], [1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1],
                        target=np.array([0.6, 0.1, 0.0]))
    assert classify(rel) == "misplaced"
    # pick: any release is a drop
    assert classify(_cube_episode([HALF, 0.05, 0.05, HALF, HALF, HALF], [1, 1, 1, 1, 0, 0],
                                  [0, 0, 0, 1, 1, 1])) == "dropped_object"


def test_reach_wrong_target_safety_and_confidence():
    n = 5
    target = np.tile([0.5, 0.2, 0.2], (n, 1))
    other = np.tile([0.5, -0.2, 0.2], (n, 1))
    to_other = np.linspace([0.5, 0.0, 0.3], [0.5, -0.19, 0.2], n)
    objects = {"target": target, "distractor1": other}
    tr = _trace(to_other, objects, [False] * n, [1.0] * n)
    assert classify(tr) == "wrong_target"
    short = _trace(np.linspace([0.5, 0.0, 0.3], [0.5, 0.1, 0.25], n), objects, [False] * n, [1.0] * n)
    assert classify(short) == "timeout"
    assert classify(short, {"refused": 2}) == "refused_by_safety"
    low = _trace(np.linspace([0.5, 0.0, 0.3], [0.5, 0.1, 0.25], n), objects, [False] * n, [1.0] * n,
                 conf=(0.1, 0.1, 0.9, 0.9))
    assert classify(low) == "low_confidence"
    assert classify(tr, success=True) is None
    counts = count_modes(["timeout", None, "timeout", "wrong_target"])
    assert list(counts) == list(FAILURE_MODES) and counts["timeout"] == 2 and counts["wrong_target"] == 1


def test_swap_colour_words_swaps_the_first_two():
    colours = {"red", "green", "blue"}
    assert swap_colour_words("put the red cube on the green square", colours) == "put the green cube on the red square"
    assert swap_colour_words("stack the red cube on the blue cube", colours) == "stack the blue cube on the red cube"
    assert swap_colour_words("reach the red target", colours) == "reach the red target"
