"""Stand-in ``franka_msgs.action`` (test only), from franka_ros2 ``franka_msgs/action``::

    Move.action:   float64 width  # [m] / float64 speed  # [m/s] --- bool success / string error ---
    Grasp.action:  float64 width # [m] / GraspEpsilon epsilon / float64 speed # [m/s] / float64 force # [N]
                   --- bool success / string error ---
"""

from .msg import GraspEpsilon


class _Result:
    def __init__(self, success: bool = False, error: str = "") -> None:
        self.success, self.error = bool(success), str(error)


class Move:
    _STANDIN = True
    Result = _Result

    class Goal:
        def __init__(self, width: float = 0.0, speed: float = 0.0) -> None:
            self.width, self.speed = float(width), float(speed)


class Grasp:
    _STANDIN = True
    Result = _Result

    class Goal:
        def __init__(self, width: float = 0.0, epsilon: GraspEpsilon | None = None, speed: float = 0.0,
                     force: float = 0.0) -> None:
            self.width, self.speed, self.force = float(width), float(speed), float(force)
            self.epsilon = epsilon or GraspEpsilon()
