"""teleop_node drives sim_node through the arm's command topic as a device would; the demonstration
equals the scripted expert's episode generated directly with the same seed."""

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import String

from action_images_ros.ros.nodes.sim_node import create_node as create_sim
from action_images_ros.ros.nodes.teleop_node import create_node as create_teleop
from action_images_ros.ros.spin import executors_for, spin_until

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("task, seed", [("reach_target", 7), ("pick_cube", 3)])
def test_teleop_demonstration_matches_the_direct_expert_episode(ros_context_factory, task, seed):
    import json

    import rclpy

    from action_images_ros.sim import make_env
    from action_images_ros.sim.rollout import run_expert_episode

    sim = create_sim(context=ros_context_factory(), cli_args=[
        "--ros-args", "--params-file", "config/sim.yaml", "-p", f"task:={task}", "-p", f"seed:={seed}",
        "-p", "image_width:=32", "-p", "image_height:=32", "-p", "publish_tf:=false"])
    watcher = rclpy.create_node("watcher", context=ros_context_factory())
    poses, status = [], []
    subs = [watcher.create_subscription(PoseStamped, "current_pose", poses.append, 50),
            watcher.create_subscription(String, "sim/status", lambda m: status.append(json.loads(m.data)), 50)]
    # the cell steps as soon as its controller (the teleop node) is there: let the watcher match first
    assert spin_until(executors_for(sim, watcher), lambda: all(x.get_publisher_count() for x in subs), 10.0)
    teleop = create_teleop(context=ros_context_factory(), cli_args=["--ros-args", "-p", f"task:={task}"])
    exs = executors_for(sim, teleop, watcher)
    env = make_env(task, image_size=32)
    try:
        direct = run_expert_episode(env, seed)
        n = len(direct.actions)
        assert spin_until(exs, lambda: teleop.targets_sent >= n and any(st["step"] >= n for st in status), 120.0), \
            f"{teleop.targets_sent} of {n} targets sent"
        assert teleop.done and direct.success and any(s["success"] for s in status)
        # per step (the watcher may have joined after the first ticks): the measured TCP the cell reported
        by_step = {st["step"]: np.asarray(st["tcp"][:3]) for st in status if st["episode"] == 0}
        steps = [k for k in range(n + 1) if k in by_step]
        assert len(steps) >= 0.8 * (n + 1) and steps[-1] == n, (f"steps seen {steps[:5]}...{steps[-3:]} of {n}; "
                                                                f"{[(st['episode'], st['step']) for st in status[:5]]}")
        err = np.array([np.linalg.norm(by_step[k] - direct.observations[k].ee_pose[:3]) for k in steps])
        assert err.max() <= 1e-3, f"largest TCP difference {1000 * err.max():.3f} mm"
    finally:
        env.close()
        for ex in exs:
            ex.shutdown()
        for node in (sim, teleop, watcher):
            node.destroy_node()
