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
