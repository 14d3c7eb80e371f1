"""Locate the package's data files (config/, launch/, urdf/, models/) installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE", "share_dir", "resolve_share_path"]

PACKAGE = "action_images_ros"


def share_dir() -> Path:
    """The package's share directory: the ament index when installed by colcon, else the source checkout."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[3]  # src/action_images_ros/ros/share.py -> repository root


def resolve_share_path(path: str | Path) -> Path:
    """An absolute path as is; a relative one against the working directory if it exists there,
    else against :func:`share_dir` (``"config/safety.yaml"`` works from anywhere)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return share_dir() / p


def load_rig_views(rig: str, views: list[str], needs: str) -> tuple[dict, list[str]]:
    """Extrinsics by camera name from a rig YAML, and the selected views (empty entries = all).

    Args:
        rig: rig YAML path (relative paths resolve against the package share).
        views: the node's ``views`` parameter.
        needs: who needs >= 2 views, for the error message (e.g. ``"the policy needs"``).

    Returns:
        ``({name: T_world_cam (4, 4)}, [view names])``.
    """
    from ..geometry import load_rig

    extrinsics = {c.name: c.T_world_cam for c in load_rig(resolve_share_path(rig))}
    selected = [v for v in views if v] or list(extrinsics)
    unknown = [v for v in selected if v not in extrinsics]
    if unknown:
        raise ValueError(f"views {unknown} are not in the rig {rig} ({sorted(extrinsics)})")
    if len(selected) < 2:
        raise ValueError(f"{needs} at least 2 views, got {selected}")
    return extrinsics, selected
