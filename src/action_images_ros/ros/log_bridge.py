"""Forward the library's Python ``logging`` records to a node's rclpy logger (and so to /rosout)."""

from __future__ import annotations

import logging

__all__ = ["RclpyLogHandler", "forward_python_logging"]


class RclpyLogHandler(logging.Handler):
    """A ``logging.Handler`` that writes records through ``rclpy`` logger methods."""

    def __init__(self, ros_logger) -> None:
        super().__init__()
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = f"[{record.name}] {self.format(record)}"
            if record.levelno >= logging.ERROR:
                self._ros_logger.error(msg)
            elif record.levelno >= logging.WARNING:
                self._ros_logger.warning(msg)
            elif record.levelno >= logging.INFO:
                self._ros_logger.info(msg)
            else:
                self._ros_logger.debug(msg)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def forward_python_logging(ros_logger, name: str = "action_images_ros", level: int = logging.INFO) -> RclpyLogHandler:
    """Attach a handler forwarding ``name``'s records (at ``level`` and above) to ``ros_logger``.

    For process entry points (a node's ``main``, the in-process runner): it sets the
    level of ``name`` and stops its records propagating to the root logger (no duplicates).

    Returns the handler; remove it with ``logging.getLogger(name).removeHandler(handler)``.
    """
    handler = RclpyLogHandler(ros_logger)
    lib = logging.getLogger(name)
    lib.addHandler(handler)
    lib.setLevel(level)
    lib.propagate = False
    return handler
