"""The one import of ``rerun`` (rerun-sdk, pinned in requirements.txt), with an install hint when missing.

Only the viewer imports this package: nodes and commands that do not visualise never load rerun.
"""

from __future__ import annotations

try:
    import rerun as rr
    import rerun.blueprint as rrb
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the viewer needs rerun-sdk: pip install rerun-sdk==0.41.0 (requirements.txt; `make setup` "
                      "installs it)") from exc

__all__ = ["rr", "rrb"]
