"""executor_backends: the sim backend over real DDS, the real-cell backends' start-up checks, Servo status text.

Here (no ROS install) moveit_py, moveit_msgs and moveit_configs_utils are not importable: the ``moveit`` and
``servo`` backends must refuse to start with an install hint, and MoveItPy's configuration check is tested
with a stand-in MoveItPy class (it only needs the class's docstring).
"""

import numpy as np
import pytest

from _ros_fakes import QOS
from action_images_ros.ros import executor_backends as eb
from action_images_ros.ros.spin import executors_for, spin_until

pytestmark = pytest.mark.ros

POSE = np.array([0.4, -0.1, 0.3, 0.0, 1.0, 0.0, 0.0, 1.0])
FULL_PARAMS = """
/**:
  ros__parameters:
    robot_description: "<robot name='fr3'/>"
    robot_description_semantic: "<robot name='fr3'/>"
    robot_description_kinematics:
      fr3_arm:
        kinematics_solver: kdl_kinematics_plugin/KDLKinematicsPlugin
    planning_pipelines:
      pipeline_names: [ompl]
"""


@pytest.fixture
def two_nodes(ros_context_factory):
    import rclpy

    node = rclpy.create_node("executor_node", context=ros_context_factory())
    world = rclpy.create_node("world", context=ros_context_factory())
    yield node, world
    node.destroy_node()
    world.destroy_node()


def test_sim_backend_publishes_one_command_per_tick(two_nodes):
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from action_images_ros.ros.stamps import stamp_to_ns
    from action_images_ros.ros.trajectory_conversion import msg_to_trajectory

    node, world = two_nodes
    got = []
    world.create_subscription(MultiDOFJointTrajectory, "sim/command", lambda m: got.append(msg_to_trajectory(m)), QOS)
    backend = eb.make_backend("sim", node, eb.BackendConfig())
    executors = executors_for(node, world)
    assert spin_until(executors, lambda: backend._pub.get_subscription_count() > 0, 10.0), "no DDS match"

    stamp = node.get_clock().now().to_msg()
    backend.send(POSE, stamp)
    backend.tick_done(stamp)  # a command was sent this tick: nothing more
    assert spin_until(executors, lambda: got, 5.0)
    spin_until(executors, lambda: False, 0.2)
    assert len(got) == 1 and got[0].frame_id == "base_link" and got[0].stamp_ns == stamp_to_ns(stamp)
    np.testing.assert_allclose(got[0].poses[0], POSE)  # pose and gripper in one message

    later = node.get_clock().now().to_msg()
    backend.tick_done(later)  # no command this tick: an empty acknowledgement
    assert spin_until(executors, lambda: len(got) == 2, 5.0)
    assert len(got[1]) == 0 and got[1].stamp_ns == stamp_to_ns(later)

    held = POSE.copy()
    held[0], held[7] = 0.5, 0.0  # measured openness is ignored: the hold keeps the commanded gripper
    backend.hold(held)
    assert spin_until(executors, lambda: len(got) == 3, 5.0)
    assert got[2].poses[0][0] == pytest.approx(0.5) and got[2].poses[0][7] == pytest.approx(POSE[7])
    assert got[2].stamp_ns == stamp_to_ns(later)  # a hold belongs to the latest tick
    assert backend.status() is None
    backend.close()
    for ex in executors:
        ex.shutdown()


def test_servo_backend_needs_moveit_msgs(two_nodes):
    try:
        import moveit_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("moveit_msgs is importable here")
    with pytest.raises(eb.BackendUnavailable, match="moveit_msgs"):
        eb.make_backend("servo", two_nodes[0], eb.BackendConfig())


def test_moveit_backend_needs_moveit_py(two_nodes):
    try:
        import moveit.planning  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("moveit_py is importable here")
    with pytest.raises(eb.BackendUnavailable, match="moveit_py"):
        eb.make_backend("moveit", two_nodes[0], eb.BackendConfig())


def test_unknown_backend_lists_valid_ones(two_nodes):
    with pytest.raises(ValueError, match="sim, servo, moveit"):
        eb.make_backend("ros1", two_nodes[0], eb.BackendConfig())


@pytest.mark.parametrize("code, message, expected", [
    (0, "No warnings", None),
    (2, "", "HALT_FOR_SINGULARITY: Very close to a singularity, emergency stop"),
    (1, "Moving closer to a singularity, decelerating", "DECELERATE_FOR_APPROACHING_SINGULARITY: Moving closer"),
    (5, "Collision detected, emergency stop", "HALT_FOR_COLLISION: Collision"),
    (6, "", "JOINT_BOUND: Close to a joint bound"),
    (-1, "", "INVALID: Invalid"),
    (42, "", "UNKNOWN(42)"),
])
def test_servo_status_text(code, message, expected):
    text = eb.servo_status_text(code, message)
    if expected is None:
        assert text is None
    else:
        assert text.startswith(expected)


class _JazzyMoveItPy:
    def __init__(self, **kwargs):
        """__init__(self, node_name: str = 'moveit_py', name_space: str = '', launch_params_filepaths:
        list[str] = [], config_dict: object = None, provide_planning_service: bool = True) -> None"""


class _OldMoveItPy:
    def __init__(self, **kwargs):
        """__init__(self, node_name: str = 'moveit_py', launch_params_filepath: str = '', config_dict: object
        = None, provide_planning_service: bool = True) -> None"""


def test_moveit_config_missing_everything_says_how_to_provide_it():
    with pytest.raises(eb.BackendUnavailable) as err:
        eb.MoveItBackend._moveit_kwargs(_JazzyMoveItPy, eb.BackendConfig())
    text = str(err.value)
    for name in eb.REQUIRED_MOVEIT_PARAMS:
        assert name in text
    assert "moveit_config_files:=" in text and "moveit_config_package:=" in text


def test_moveit_config_file_lacking_srdf_and_pipelines(tmp_path):
    path = tmp_path / "moveit.yaml"
    path.write_text("moveit_py:\n  ros__parameters:\n    robot_description: '<robot/>'\n"
                    "    robot_description_kinematics: {fr3_arm: {kinematics_solver: kdl}}\n"
                    "    planning_pipelines: [ompl]\n")  # move_group's flat form: not what MoveItCpp reads
    with pytest.raises(eb.BackendUnavailable) as err:
        eb.MoveItBackend._moveit_kwargs(_JazzyMoveItPy, eb.BackendConfig(moveit_config_files=str(path)))
    text = str(err.value)
    assert "robot_description_semantic" in text and "planning_pipelines.pipeline_names" in text
    assert "lacks: robot_description," not in text  # robot_description itself is there


def test_moveit_config_file_for_another_node(tmp_path):
    path = tmp_path / "moveit.yaml"
    path.write_text(FULL_PARAMS.replace("/**:", "move_group:"))
    with pytest.raises(eb.BackendUnavailable, match="no 'ros__parameters' section for MoveItPy's node"):
        eb.MoveItBackend._moveit_kwargs(_JazzyMoveItPy, eb.BackendConfig(moveit_config_files=str(path)))
    with pytest.raises(eb.BackendUnavailable, match="does not exist"):
        eb.MoveItBackend._moveit_kwargs(_JazzyMoveItPy, eb.BackendConfig(moveit_config_files="/nope.yaml"))


def test_moveit_config_complete_goes_to_launch_params_filepaths(tmp_path):
    path = tmp_path / "moveit.yaml"
    path.write_text(FULL_PARAMS)
    cfg = eb.BackendConfig(moveit_config_files=f"{path}, ")
    kwargs = eb.MoveItBackend._moveit_kwargs(_JazzyMoveItPy, cfg)
    assert kwargs == {"node_name": "moveit_py", "provide_planning_service": False,
                      "launch_params_filepaths": [str(path)]}
    old = eb.MoveItBackend._moveit_kwargs(_OldMoveItPy, cfg)
    assert old["launch_params_filepath"] == str(path) and "launch_params_filepaths" not in old


def test_moveit_config_package_needs_moveit_configs_utils():
    try:
        import moveit_configs_utils  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("moveit_configs_utils is importable here")
    with pytest.raises(eb.BackendUnavailable, match="moveit_configs_utils"):
        eb.MoveItBackend._moveit_kwargs(_JazzyMoveItPy,
                                        eb.BackendConfig(moveit_config_package="franka_fr3_moveit_config"))


def test_config_defaults_and_franka_names():
    cfg = eb.BackendConfig()
    assert cfg.base_frame == "base_link"  # the simulation's frame
    assert (cfg.moveit_group, cfg.moveit_tcp_link, cfg.franka_gripper_ns) == ("fr3_arm", "fr3_hand_tcp",
                                                                             "/franka_gripper")
    assert (eb.FRANKA_BASE_FRAME, eb.FRANKA_TCP_LINK) == ("fr3_link0", "fr3_hand_tcp")
    assert cfg.servo_command_type_service == "/servo_node/switch_command_type"
    with pytest.raises(ValueError, match="servo_service_timeout_s"):
        eb.BackendConfig(servo_service_timeout_s=0.0)
