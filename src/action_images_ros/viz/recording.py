"""Where a recording goes: an ``.rrd`` file or a running viewer (the caller's choice, made once).

Every recording of this package has the application id :data:`APP_ID` and the default layout
of :func:`.blueprint.default_blueprint` for its cameras.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Sequence

from ._rerun import rr
from .blueprint import default_blueprint
from .log import ROS_TIME

__all__ = ["APP_ID", "DEFAULT_VIEWER_URL", "open_recording", "close_recording"]

APP_ID = "action_images"
#: a Rerun viewer on this machine (``rerun`` started without arguments listens here)
DEFAULT_VIEWER_URL = "rerun+http://127.0.0.1:9876/proxy"


def open_recording(name: str, views: Sequence[str], save: str | Path | None = None, connect: str | None = None,
                   spawn: bool = False, recording_id: str | None = None, timeline: str = ROS_TIME
                   ) -> "rr.RecordingStream":
    """A new recording named ``name`` with the default layout for ``views`` (opening on ``timeline``), sent to
    exactly one of:
    the file ``save`` (``.rrd``, parent folders made), the viewer at ``connect`` (a ``rerun+http://``
    URL), or a native viewer started now (``spawn``; needs a display)."""
    if sum(x is not None and x is not False for x in (save, connect, spawn)) != 1:
        raise ValueError("give exactly one of save (an .rrd path), connect (a viewer URL) or spawn")
    rec = rr.RecordingStream(APP_ID, recording_id=recording_id or uuid.uuid4().hex)
    blueprint = default_blueprint(views, timeline=timeline)
    if save is not None:
        path = Path(save)
        if path.suffix != ".rrd":
            raise ValueError(f"a recording file must end in .rrd, got {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        rec.save(path, default_blueprint=blueprint)
    elif connect is not None:
        if not connect.startswith(("rerun://", "rerun+http://", "rerun+https://")):
            raise ValueError(f"a viewer URL looks like {DEFAULT_VIEWER_URL}, got {connect!r}")
        rec.connect_grpc(connect, default_blueprint=blueprint)
    else:
        rec.spawn(default_blueprint=blueprint)
    rec.send_recording_name(name)
    return rec


def close_recording(rec: "rr.RecordingStream") -> None:
    """Send what is buffered and close the sink (an ``.rrd`` gets its footer)."""
    rec.flush()
    rec.disconnect()
