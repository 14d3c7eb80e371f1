"""Turn the node graph (``graph.py``) into a ``launch.LaunchDescription`` for ``ros2 launch``.

``launch`` / ``launch_ros`` exist only in a ROS 2 install, so they are imported inside
:func:`generate_launch_description`; the launch files in ``launch/`` only call it.
"""

from __future__ import annotations

from .graph import LAUNCH_ARGUMENTS, GraphOptions, build_graph
from .share import share_dir

__all__ = ["generate_launch_description"]


def generate_launch_description(**defaults: str):
    """A LaunchDescription declaring every graph option as a launch argument (``defaults`` override
    the defaults, e.g. ``use_sim="true"``) and starting ``build_graph`` of the chosen options."""
    try:
        from launch import LaunchDescription
        from launch.actions import DeclareLaunchArgument, OpaqueFunction
        from launch.substitutions import LaunchConfiguration
        from launch_ros.actions import Node
    except ImportError as exc:
        raise ImportError("ros2 launch needs the ROS 2 'launch' and 'launch_ros' packages (a sourced ROS 2 "
                          "install); without them use `action-images run`") from exc

    unknown = set(defaults) - {name for name, _, _ in LAUNCH_ARGUMENTS}
    if unknown:
        raise ValueError(f"unknown launch argument defaults {sorted(unknown)}")

    def nodes(context, *args, **kwargs):
        options = GraphOptions.from_strings(
            {name: LaunchConfiguration(name).perform(context) for name, _, _ in LAUNCH_ARGUMENTS})
        share = share_dir()
        return [
            Node(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                 parameters=[str(p) for p in spec.parameter_files(share)] + [dict(spec.overrides)],
                 remappings=list(spec.remappings), arguments=list(spec.arguments), output="screen",
                 additional_env=dict(spec.env))
            for spec in build_graph(options)
        ]

    declared = [DeclareLaunchArgument(name, default_value=str(defaults.get(name, default)), description=doc)
                for name, default, doc in LAUNCH_ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])
