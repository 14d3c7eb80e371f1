"""Stand-in ``moveit_msgs.srv`` (test only). ``ServoCommandType.srv`` (moveit/moveit_msgs)::

    # Request constants
    int8 JOINT_JOG = 0
    int8 TWIST = 1
    int8 POSE = 2
    # Request Field
    int8 command_type
    ---
    # Response Field
    bool success
"""


class ServoCommandType:
    _STANDIN = True

    class Request:
        JOINT_JOG = 0
        TWIST = 1
        POSE = 2

        def __init__(self, command_type: int = 0) -> None:
            self.command_type = int(command_type)

    class Response:
        def __init__(self, success: bool = False) -> None:
            self.success = bool(success)
