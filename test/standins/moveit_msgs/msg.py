"""Stand-in ``moveit_msgs.msg`` (test only). ``ServoStatus.msg`` (moveit/moveit_msgs, msg/ServoStatus.msg)::

    int8 code # will contains integer code
    string message # will contain explanatory message
    int8 INVALID = -1
    int8 NO_WARNING = 0
    int8 DECELERATE_FOR_APPROACHING_SINGULARITY = 1
    int8 HALT_FOR_SINGULARITY = 2
    int8 DECELERATE_FOR_LEAVING_SINGULARITY = 3
    int8 DECELERATE_FOR_COLLISION = 4
    int8 HALT_FOR_COLLISION = 5
    int8 JOINT_BOUND = 6
"""


class ServoStatus:
    _STANDIN = True
    INVALID = -1
    NO_WARNING = 0
    DECELERATE_FOR_APPROACHING_SINGULARITY = 1
    HALT_FOR_SINGULARITY = 2
    DECELERATE_FOR_LEAVING_SINGULARITY = 3
    DECELERATE_FOR_COLLISION = 4
    HALT_FOR_COLLISION = 5
    JOINT_BOUND = 6

    def __init__(self, code: int = 0, message: str = "") -> None:
        self.code, self.message = int(code), str(message)
