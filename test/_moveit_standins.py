"""Test-only plumbing for the stand-ins in ``test/standins/`` (moveit_py, moveit_msgs, franka_msgs).

* :func:`standins` (fixture): puts ``test/standins`` first on ``sys.path`` (a spawned MoveIt worker inherits
  it), points the stand-ins' event log at a fresh folder, and removes every stand-in module afterwards.
* :class:`StandinNode`: a real rclpy node whose subscriptions / clients of stand-in message types (which
  have no DDS type support) are served in Python: the test plays MoveIt Servo's status topic and its
  ``~/switch_command_type`` service; everything else (publishers, clock) is the real node.
* :class:`StandinActionClient`: replaces rclpy's ActionClient for franka_msgs stand-in actions.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from rclpy.task import Future

STANDINS = Path(__file__).resolve().parent / "standins"
STANDIN_PACKAGES = ("moveit", "moveit_msgs", "franka_msgs")


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in STANDIN_PACKAGES:
            del sys.modules[name]


@pytest.fixture
def standins(monkeypatch, tmp_path):
    """The stand-in packages importable (here and in spawned workers); yields the event-log folder."""
    _purge()
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.setenv("STANDIN_MOVEIT_DIR", str(tmp_path))
    yield tmp_path
    _purge()


def events(folder) -> list[dict]:
    sys.path.insert(0, str(STANDINS))
    try:
        from moveit._events import read
    finally:
        sys.path.remove(str(STANDINS))
    return read(folder)


def wait_for(predicate, timeout_s: float = 60.0, what: str = "event"):
    """Poll ``predicate()`` until it returns something truthy (judged by events; the timeout only ends a hang)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"no {what} within {timeout_s} s")


class _StandinClient:
    def __init__(self, node, name: str) -> None:
        self._node, self._name = node, name
        self.requests = []

    def wait_for_service(self, timeout_sec: float | None = None) -> bool:
        return self._name in self._node.standin_services

    def call_async(self, request) -> Future:
        self.requests.append(request)
        future = Future()
        future.set_result(self._node.standin_services[self._name](request))
        return future


class StandinNode:
    """A real node; stand-in types are served in Python (see the module docstring)."""

    def __init__(self, node) -> None:
        self._node = node
        self.standin_subs: dict[str, list] = {}
        self.standin_services: dict[str, object] = {}
        self.clients: dict[str, _StandinClient] = {}

    def __getattr__(self, name):
        return getattr(self._node, name)

    def create_subscription(self, msg_type, topic, callback, qos, **kwargs):
        if getattr(msg_type, "_STANDIN", False):
            self.standin_subs.setdefault(topic, []).append(callback)
            return object()
        return self._node.create_subscription(msg_type, topic, callback, qos, **kwargs)

    def create_client(self, srv_type, name, **kwargs):
        if getattr(srv_type, "_STANDIN", False):
            self.clients[name] = _StandinClient(self, name)
            return self.clients[name]
        return self._node.create_client(srv_type, name, **kwargs)

    def destroy_client(self, client) -> bool:
        if isinstance(client, _StandinClient):
            return True
        return self._node.destroy_client(client)

    def deliver(self, topic: str, msg) -> None:
        for callback in self.standin_subs.get(topic, []):
            callback(msg)


class _GoalHandle:
    def __init__(self, result) -> None:
        self.accepted = True
        self._result = result

    def get_result_async(self) -> Future:
        future = Future()
        future.set_result(type("Response", (), {"result": self._result, "status": 4})())
        return future


class StandinActionClient:
    """rclpy.action.ActionClient for stand-in action types: records goals; the server's answer is
    ``result_for(goal)`` (default success)."""

    instances: list["StandinActionClient"] = []

    def __init__(self, node, action_type, action_name, **kwargs) -> None:
        self.action_type, self.action_name = action_type, action_name
        self.goals = []
        self.ready = True
        self.result_for = lambda goal: action_type.Result(success=True)
        StandinActionClient.instances.append(self)

    def server_is_ready(self) -> bool:
        return self.ready

    def send_goal_async(self, goal, **kwargs) -> Future:
        self.goals.append(goal)
        future = Future()
        future.set_result(_GoalHandle(self.result_for(goal)))
        return future
