"""Franka Panda model files from the installed robosuite package, and mesh decimation.

The robot (``robots/panda/robot.xml``) and its parallel gripper
(``grippers/panda_gripper.xml``) are robosuite 1.5.2's MIT-licensed MJCF files.
They are read from the installed package, never copied into this repository.
robosuite itself is not imported (its Python dependencies are not needed): only
its package folder is located.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROBOT_XML = "robots/panda/robot.xml"
GRIPPER_XML = "grippers/panda_gripper.xml"


def robosuite_assets_dir() -> Path:
    """Folder ``robosuite/models/assets`` of the installed robosuite package.

    Raises:
        FileNotFoundError: robosuite is not installed or lacks the Panda files.
    """
    spec = importlib.util.find_spec("robosuite")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the Franka Panda model comes from robosuite's asset files: "
            "install them with `pip install --no-deps robosuite==1.5.2`"
        )
    assets = Path(spec.origin).parent / "models" / "assets"
    for rel in (ROBOT_XML, GRIPPER_XML):
        if not (assets / rel).is_file():
            raise FileNotFoundError(f"robosuite is installed but {assets / rel} is missing (need robosuite 1.5.2)")
    return assets


def decimate_mesh(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Simplify a triangle mesh by vertex clustering on a grid of ``cell`` metres.

    Vertices in one grid cell merge into their mean; triangles that collapse or
    duplicate are dropped. Crude but fast and good enough for 128-256 px renders.

    Args:
        vertices: ``(N, 3)`` float vertex positions (metres).
        faces: ``(F, 3)`` int vertex indices.
        cell: grid size in metres (> 0).

    Returns:
        ``(N', 3)`` vertices and ``(F', 3)`` faces with ``F' <= F`` (F' may be 0
        for a mesh smaller than one cell).
    """
    if cell <= 0:
        raise ValueError(f"cell must be positive, got {cell}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"expected vertices (N, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    keys = np.floor(v / cell).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    merged = np.zeros((counts.shape[0], 3))
    np.add.at(merged, inverse, v)
    merged /= counts[:, None]
    nf = inverse[f]
    keep = (nf[:, 0] != nf[:, 1]) & (nf[:, 1] != nf[:, 2]) & (nf[:, 0] != nf[:, 2])
    nf = nf[keep]
    if len(nf):
        _, first = np.unique(np.sort(nf, axis=1), axis=0, return_index=True)
        nf = nf[np.sort(first)]
    used = np.unique(nf)
    remap = np.full(len(merged), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return merged[used], remap[nf]
