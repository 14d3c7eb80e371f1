"""Stand-in ``franka_msgs.msg`` (test only): ``GraspEpsilon.msg`` = ``float64 inner`` / ``float64 outer`` [m]."""


class GraspEpsilon:
    def __init__(self, inner: float = 0.0, outer: float = 0.0) -> None:
        self.inner, self.outer = float(inner), float(outer)
