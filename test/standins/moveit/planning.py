"""Stand-in ``moveit.planning`` (test only), shaped like moveit_py (moveit2 ``moveit_py/moveit/planning.pyi``,
``moveit_cpp.cpp``, ``planning_component.cpp``):

* ``MoveItPy(node_name="moveit_py", name_space="", launch_params_filepaths=[], config_dict=None,
  provide_planning_service=True)``; ``get_planning_component(name)``, ``execute(robot_trajectory,
  controllers)`` -> ``ExecutionStatus`` (``__bool__``, ``.status``), ``get_trajectory_execution_manager()``
  (``stop_execution(auto_clear=True)``), ``get_robot_model()``, ``get_planning_scene_monitor()``
  (``read_only()`` context -> scene with ``is_path_valid(trajectory, joint_model_group_name, verbose=False)``).
* ``PlanningComponent``: ``set_start_state_to_current_state()``, ``get_start_state()``,
  ``set_goal_state(configuration_name=None, robot_state=None, pose_stamped_msg=None, pose_link=None,
  motion_plan_constraints=None)``, ``plan()`` -> result with ``.trajectory``, false when planning failed.

Like MoveItCpp it refuses to start when the parameter file lacks ``planning_pipelines.pipeline_names``.
Behaviour for tests (environment, inherited by the worker process): ``STANDIN_PLAN_GIL_S`` = seconds
every ``plan()`` holds the GIL (as moveit_py's binding does); ``STANDIN_EXEC_S`` (or the file ``exec_s`` in the
event folder, read at each call) = seconds ``execute`` runs unless stopped. A goal with x > 1.5 m has no
plan; one with z < 0 makes ``plan()`` raise.
"""

import os
import threading
import time

import yaml

from ._events import log
from .core.robot_model import RobotModel
from .core.robot_state import RobotState


def _hold_gil(seconds: float) -> None:
    """One C call that keeps the GIL for about ``seconds`` (builtin sum over a range never releases it)."""
    if seconds <= 0:
        return
    t0 = time.perf_counter()
    sum(range(1_000_000))
    per_item = max((time.perf_counter() - t0) / 1e6, 1e-10)
    sum(range(int(seconds / per_item)))


def _exec_seconds() -> float:
    """``$STANDIN_MOVEIT_DIR/exec_s`` if the test wrote one (read at each call), else ``STANDIN_EXEC_S``."""
    path = os.path.join(os.environ.get("STANDIN_MOVEIT_DIR", ""), "exec_s")
    if os.environ.get("STANDIN_MOVEIT_DIR") and os.path.exists(path):
        with open(path) as f:
            return float(f.read())
    return float(os.environ.get("STANDIN_EXEC_S", "0"))


class ExecutionStatus:
    def __init__(self, status: str) -> None:
        self.status = status

    def __bool__(self) -> bool:
        return self.status == "SUCCEEDED"


class _PlanResult:
    def __init__(self, trajectory) -> None:
        self.trajectory = trajectory

    def __bool__(self) -> bool:
        return self.trajectory is not None


class _TrajectoryExecutionManager:
    def __init__(self, stop_event: threading.Event) -> None:
        self._stop = stop_event

    def stop_execution(self, auto_clear: bool = True) -> None:
        log("stop_execution", auto_clear=auto_clear)
        self._stop.set()


class _Scene:
    def is_path_valid(self, trajectory, joint_model_group_name: str, verbose: bool = False) -> bool:
        log("is_path_valid", group=joint_model_group_name)
        return True


class _ReadOnly:
    def __enter__(self):
        return _Scene()

    def __exit__(self, *exc):
        return False


class _PlanningSceneMonitor:
    def read_only(self):
        return _ReadOnly()


class _PlannedTrajectory:
    def __init__(self, goal) -> None:
        self.goal = goal


class PlanningComponent:
    def __init__(self, group: str, model: RobotModel) -> None:
        self._group, self._model = group, model
        self._goal = None

    def set_start_state_to_current_state(self) -> None:
        log("set_start_state_to_current_state")

    def get_start_state(self) -> RobotState:
        state = RobotState(self._model)
        state.set_joint_group_positions(self._group, [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
        return state

    def set_goal_state(self, configuration_name=None, robot_state=None, pose_stamped_msg=None, pose_link=None,
                       motion_plan_constraints=None) -> None:
        p = pose_stamped_msg.pose
        self._goal = {"pose": [p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                               p.orientation.z, p.orientation.w],
                      "frame": pose_stamped_msg.header.frame_id, "link": pose_link}
        log("set_goal_state", **self._goal)

    def plan(self, single_plan_parameters=None, multi_plan_parameters=None, planning_scene=None,
             solution_selection_function=None, stopping_criterion_callback=None):
        goal = self._goal
        log("plan_start", x=goal["pose"][0])
        _hold_gil(float(os.environ.get("STANDIN_PLAN_GIL_S", "0")))
        log("plan_end", x=goal["pose"][0])
        if goal["pose"][2] < 0:
            raise RuntimeError("stand-in planner crashed")
        if goal["pose"][0] > 1.5:
            return _PlanResult(None)
        return _PlanResult(_PlannedTrajectory(goal))


class MoveItPy:
    def __init__(self, node_name: str = "moveit_py", name_space: str = "", launch_params_filepaths=None,
                 config_dict=None, provide_planning_service: bool = True) -> None:
        """__init__(self, node_name: str = 'moveit_py', name_space: str = '', launch_params_filepaths:
        list[str] = [], config_dict: object = None, provide_planning_service: bool = True) -> None"""
        params = {}
        for path in launch_params_filepaths or []:
            with open(path) as f:
                params.update((yaml.safe_load(f) or {}).get("/**", {}).get("ros__parameters", {}))
        pipelines = (params.get("planning_pipelines") or {}).get("pipeline_names")
        if not pipelines:
            raise RuntimeError("Failed to load any planning pipelines.")
        log("moveit_py_init", node_name=node_name, files=list(launch_params_filepaths or []),
            provide_planning_service=provide_planning_service, params=params)
        self._model = RobotModel()
        self._stop = threading.Event()

    def get_planning_component(self, planning_component_name: str) -> PlanningComponent:
        return PlanningComponent(planning_component_name, self._model)

    def get_robot_model(self) -> RobotModel:
        return self._model

    def get_planning_scene_monitor(self) -> _PlanningSceneMonitor:
        return _PlanningSceneMonitor()

    def get_trajectory_execution_manager(self) -> _TrajectoryExecutionManager:
        return _TrajectoryExecutionManager(self._stop)

    def execute(self, robot_trajectory, controllers) -> ExecutionStatus:
        self._stop.clear()
        kind = "chunk" if hasattr(robot_trajectory, "points") else "plan"
        log("execute_start", kind=kind, controllers=list(controllers))
        stopped = self._stop.wait(_exec_seconds())  # releases the GIL
        log("execute_end", kind=kind, stopped=stopped)
        return ExecutionStatus("PREEMPTED" if stopped else "SUCCEEDED")
