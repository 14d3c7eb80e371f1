"""Checks that run in a new Python process (what a user's first import sees)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def loads_component(folder: Path, component: str) -> None:
    """A fresh process that imports only the pipeline loads ``folder`` with its ``component`` (diffusers loads
    a custom component only once its module has been imported: the pipeline module must import it)."""
    code = ("from action_images_ros.model.pipeline import ActionImagesPipeline as P; "
            f"print(getattr(P.from_pretrained({str(folder)!r}), {component!r}) is not None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "True", done.stderr[-2000:]
