"""MoveItPy's configuration: what it needs, where it comes from, and the start-up check (no rclpy).

MoveItPy (moveit_py ``moveit_cpp.cpp``) reads its node's parameters: the robot (``robot_description``,
``robot_description_semantic``, ``robot_description_kinematics``), the planning pipelines
(``planning_pipelines.pipeline_names`` and each pipeline's ``<name>.planning_plugins``), the request a
bare ``PlanningComponent.plan()`` uses (``plan_request_params.*``, PlanRequestParameters' default
namespace) and the controllers execution goes to (``moveit_controller_manager`` +
``moveit_simple_controller_manager.*``). A missing one makes every plan or execution fail at run time,
so the backend refuses to start and names each with how to provide it.

franka_fr3_moveit_config has no ``fr3.urdf`` / ``fr3.srdf`` / setup-assistant file, so
``MoveItConfigsBuilder("fr3", package_name="franka_fr3_moveit_config")`` raises. Its
``launch/moveit.launch.py`` builds the robot with xacro instead; :func:`franka_fr3_params` does the same:
URDF = ``xacro franka_description/robots/fr3/fr3.urdf.xacro hand:=true ros2_control:=false robot_type:=fr3``,
SRDF = ``xacro franka_description/robots/fr3/fr3.srdf.xacro hand:=true``, kinematics from
``franka_fr3_moveit_config/config/kinematics.yaml``. Pipelines, request and controllers come from
``config/moveit_fr3.yaml`` (this package), on top.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .base import BackendConfig, BackendUnavailable

__all__ = ["REQUIRED_MOVEIT_PARAMS", "load_moveit_params", "missing_moveit_params", "moveit_config_problems",
           "moveit_params", "franka_fr3_params", "write_params_file", "flatten"]

# parameters MoveItPy needs -> how to provide each
REQUIRED_MOVEIT_PARAMS = {
    "robot_description": "the URDF (franka: xacro franka_description/robots/fr3/fr3.urdf.xacro hand:=true "
                         "ros2_control:=false robot_type:=fr3, or moveit_config_package:=franka_fr3_moveit_config)",
    "robot_description_semantic": "the SRDF (franka: xacro franka_description/robots/fr3/fr3.srdf.xacro hand:=true)",
    "robot_description_kinematics": "kinematics.yaml of the MoveIt config (franka_fr3_moveit_config/config)",
    "planning_pipelines.pipeline_names": "MoveItCpp's pipeline list, e.g. [ompl] (move_group's flat "
                                         "'planning_pipelines: [ompl]' is not read by MoveItCpp); "
                                         "config/moveit_fr3.yaml has it",
    "plan_request_params.planning_pipeline": "the pipeline a plain plan() uses (PlanRequestParameters' default "
                                             "namespace 'plan_request_params'); config/moveit_fr3.yaml has it",
    "plan_request_params.max_velocity_scaling_factor": "velocity scaling of plans (<= moveit_max_velocity_scaling, "
                                                       "default 0.1; MoveIt's own default is 1.0 = full speed)",
    "plan_request_params.max_acceleration_scaling_factor": "acceleration scaling of plans "
                                                           "(<= moveit_max_acceleration_scaling, default 0.1)",
    "moveit_controller_manager": "moveit_simple_controller_manager/MoveItSimpleControllerManager "
                                 "(franka_fr3_moveit_config/launch/moveit.launch.py)",
    "moveit_simple_controller_manager.controller_names": "the controllers of franka_fr3_moveit_config/config/"
                                                         "fr3_controllers.yaml (fr3_arm_controller, "
                                                         "FollowJointTrajectory)",
}


def flatten(params: dict, prefix: str = "") -> dict:
    """Nested parameters -> ``{"a.b.c": value}``."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _node_sections(doc: dict, node_name: str) -> list[dict]:
    """The ``ros__parameters`` of a parameter file that apply to ``node_name`` (no namespace)."""
    sections = []
    for key, body in (doc or {}).items():
        if not isinstance(body, dict) or "ros__parameters" not in body:
            continue
        k = str(key)
        if k in ("/**", "**") or k.lstrip("/") == node_name or k.endswith(f"/{node_name}"):
            sections.append(body["ros__parameters"] or {})
    return sections


def load_moveit_params(files: list[str], node_name: str) -> dict:
    """Dot-flattened parameters that ``files`` give the node ``node_name`` (later files win).

    Raises:
        BackendUnavailable: a file is missing, unreadable, or has no section for the node.
    """
    import yaml

    from ..share import resolve_share_path

    params: dict = {}
    for path in files:
        p = resolve_share_path(path)
        if not p.is_file():
            raise BackendUnavailable(f"MoveIt parameter file {path!r} (moveit_config_files) does not exist")
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise BackendUnavailable(f"MoveIt parameter file {path!r} is not valid YAML: {exc}") from exc
        sections = _node_sections(doc if isinstance(doc, dict) else {}, node_name)
        if not sections:
            found = sorted(map(str, doc)) if isinstance(doc, dict) else []
            raise BackendUnavailable(
                f"MoveIt parameter file {path!r} has no 'ros__parameters' section for MoveItPy's node "
                f"{node_name!r} (expected key '/**' or '{node_name}', found {found}); "
                f"set moveit_node_name or rename the section")
        for section in sections:
            params.update(flatten(section))
    return params


def _present(params: dict, name: str) -> bool:
    return any((k == name or k.startswith(name + ".")) and v not in (None, "", [], {}) for k, v in params.items())


def missing_moveit_params(params: dict) -> list[str]:
    """Names of :data:`REQUIRED_MOVEIT_PARAMS` absent from dot-flattened ``params``
    (a name counts as present when it or any ``name.<sub>`` key is set and not empty)."""
    return [name for name in REQUIRED_MOVEIT_PARAMS if not _present(params, name)]


def moveit_config_problems(params: dict, config: BackendConfig) -> list[str]:
    """Everything wrong with dot-flattened MoveItPy ``params`` for ``config``, one line each (empty = usable)."""
    problems = [f"{name} is missing: {REQUIRED_MOVEIT_PARAMS[name]}" for name in missing_moveit_params(params)]
    pipelines = params.get("planning_pipelines.pipeline_names") or []
    if isinstance(pipelines, str):
        pipelines = [pipelines]
    for name in pipelines:
        if not (_present(params, f"{name}.planning_plugins") or _present(params, f"{name}.planning_plugin")):
            problems.append(f"{name}.planning_plugins is missing: the planner plugin of pipeline {name!r} "
                            "(e.g. [ompl_interface/OMPLPlanner]); config/moveit_fr3.yaml has it")
    chosen = params.get("plan_request_params.planning_pipeline")
    if chosen and pipelines and chosen not in pipelines:
        problems.append(f"plan_request_params.planning_pipeline {chosen!r} is not one of "
                        f"planning_pipelines.pipeline_names {list(pipelines)}")
    for key, limit, setting in (
            ("plan_request_params.max_velocity_scaling_factor", config.moveit_max_velocity_scaling,
             "moveit_max_velocity_scaling"),
            ("plan_request_params.max_acceleration_scaling_factor", config.moveit_max_acceleration_scaling,
             "moveit_max_acceleration_scaling")):
        value = params.get(key)
        if value is None:
            continue
        try:
            ok = 0 < float(value) <= limit
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"{key} is {value!r}: must be in (0, {limit}] ({setting}); the arm would move faster "
                            "than this cell allows")
    controllers = params.get("moveit_simple_controller_manager.controller_names") or []
    for name in controllers if isinstance(controllers, list) else [controllers]:
        for field in ("type", "action_ns", "joints"):
            if not _present(params, f"moveit_simple_controller_manager.{name}.{field}"):
                problems.append(f"moveit_simple_controller_manager.{name}.{field} is missing (controller {name!r}, "
                                "see franka_fr3_moveit_config/config/fr3_controllers.yaml)")
    return problems


def _xacro(path: str, mappings: dict) -> str:
    import xacro

    return xacro.process_file(path, mappings=mappings).toxml()


def franka_fr3_params(load_gripper: bool = True) -> dict:
    """The robot part of MoveItPy's parameters for the FR3, built as franka_fr3_moveit_config's
    moveit.launch.py builds it (see the module docstring); nested dict."""
    try:
        import yaml
        from ament_index_python.packages import get_package_share_directory

        description = get_package_share_directory("franka_description")
        moveit_config = get_package_share_directory("franka_fr3_moveit_config")
        hand = "true" if load_gripper else "false"
        urdf = _xacro(os.path.join(description, "robots", "fr3", "fr3.urdf.xacro"),
                      {"hand": hand, "ros2_control": "false", "robot_type": "fr3"})
        srdf = _xacro(os.path.join(description, "robots", "fr3", "fr3.srdf.xacro"), {"hand": hand})
        kinematics = yaml.safe_load(Path(moveit_config, "config", "kinematics.yaml").read_text()) or {}
    except Exception as exc:  # noqa: BLE001 - ament / xacro / a missing file: one message with the fix
        raise BackendUnavailable(
            "moveit_config_package:=franka_fr3_moveit_config needs franka_description, franka_fr3_moveit_config, "
            f"xacro and ament_index_python from a sourced franka_ros2 install ({type(exc).__name__}: {exc})") from exc
    if "/**" in kinematics:  # a ROS parameter file rather than the plain mapping the launch file passes
        kinematics = kinematics["/**"].get("ros__parameters", {})
    kinematics = kinematics.get("robot_description_kinematics", kinematics)
    return {"robot_description": urdf, "robot_description_semantic": srdf,
            "robot_description_kinematics": kinematics}


def _package_params(package: str, robot_name: str) -> dict:
    if package == "franka_fr3_moveit_config":
        return franka_fr3_params()
    try:
        from moveit_configs_utils import MoveItConfigsBuilder
    except ImportError as exc:
        raise BackendUnavailable(
            "moveit_config_package needs moveit_configs_utils (ros-jazzy-moveit-configs-utils) in a sourced "
            "ROS 2 install; or pass moveit_config_files instead") from exc
    try:
        params = MoveItConfigsBuilder(robot_name, package_name=package).to_moveit_configs().to_dict()
    except Exception as exc:  # noqa: BLE001 - the builder raises many kinds (missing files, xacro errors)
        raise BackendUnavailable(f"MoveItConfigsBuilder({robot_name!r}, package_name={package!r}) failed: {exc}; "
                                 "write a parameter file and pass moveit_config_files instead") from exc
    # the builder sets move_group's flat 'planning_pipelines: [...]'; MoveItCpp reads planning_pipelines.pipeline_names
    pipelines = params.get("planning_pipelines")
    if isinstance(pipelines, list):
        params["planning_pipelines"] = {"pipeline_names": pipelines, "namespace": ""}
    return params


def moveit_params(config: BackendConfig) -> dict:
    """Dot-flattened MoveItPy parameters from ``moveit_config_package``, then ``moveit_cell_config``, then
    ``moveit_config_files`` (later win).

    Raises:
        BackendUnavailable: nothing given, a source fails, or the result is incomplete / unsafe
            (the message names every problem and how to fix it).
    """
    files, package = config.moveit_config_file_list, config.moveit_config_package
    if config.moveit_cell_config:
        files = [config.moveit_cell_config] + files
    params: dict = {}
    if package:
        params.update(flatten(_package_params(package, config.moveit_robot_name)))
    if files:
        params.update(load_moveit_params(files, config.moveit_node_name))
    source = ", ".join(filter(None, [f"package {package}" if package else "", f"files {files}" if files else ""]))
    problems = moveit_config_problems(params, config)
    if problems:
        source = source or "moveit_config_files and moveit_config_package are empty"
        lines = [f"executor backend 'moveit': MoveItPy's configuration ({source}) cannot plan and execute safely:"]
        lines += [f"  - {p}" for p in problems]
        lines.append("Provide it with moveit_config_files:=<params.yaml>[,<more.yaml>] (sections '/**' or "
                     "'<moveit_node_name>: ros__parameters:'; e.g. the package's config/moveit_fr3.yaml) and/or "
                     "moveit_config_package:=franka_fr3_moveit_config (URDF/SRDF/kinematics by xacro, as "
                     "franka's moveit.launch.py).")
        raise BackendUnavailable("\n".join(lines))
    return params


def write_params_file(params: dict, node_name: str) -> str:
    """Dot-flattened ``params`` -> a ROS 2 parameter file for ``node_name`` (and ``/**``); returns its path."""
    import yaml

    fd, path = tempfile.mkstemp(prefix="action_images_moveit_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({"/**": {"ros__parameters": _nest(params)}}, f, sort_keys=True)
    return path
