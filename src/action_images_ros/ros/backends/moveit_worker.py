"""The process that owns MoveItPy (started by :class:`~.moveit.MoveItBackend`; no rclpy imported here).

moveit_py's ``PlanningComponent.plan()`` holds the GIL while it plans (its binding in
``moveit_py/src/moveit/moveit_ros/moveit_cpp/planning_component.cpp`` has no ``gil_scoped_release``), so in
executor_node's process it would freeze the control ticks, the camera watchdog and ``~/pause`` for the
whole plan. Here it runs in a process of its own: the executor only writes to a pipe.

Messages from the executor (tuples): ``("goal", seq, pose7, frame, stamp_ns)`` plan to a tip pose and
execute; ``("path", seq, poses (N, 7), times_s (N,), frame)`` the keyframes of a chunk as ONE
trajectory: IK per keyframe (seeded by the previous one), the joint path time-parameterised (TOTG) at the
cell's scaling, checked against the planning scene, executed once; ``("stop", seq)`` cancel what is
pending and stop the running execution (``TrajectoryExecutionManager.stop_execution``); ``("quit",)``.
Only the newest goal/path is kept: one that arrived while another was planned supersedes it; a path that
arrives while another item executes also stops that execution (``superseded``), a goal waits for it.
Answers: ``("ready",)`` / ``("error", text)`` at start, then ``("done", seq, ok, text)``,
``("failed", seq, text)``, ``("superseded", seq)``.
"""

from __future__ import annotations

import threading
import time
import traceback

__all__ = ["main"]


def main(conn, moveit_kwargs: dict, settings: dict) -> None:
    try:
        from moveit.planning import MoveItPy

        moveit = MoveItPy(**moveit_kwargs)
        arm = moveit.get_planning_component(settings["group"])
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the executor as text
        conn.send(("error", f"MoveItPy did not start: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    _Worker(conn, moveit, arm, settings).run()


class _Worker:
    def __init__(self, conn, moveit, arm, settings: dict) -> None:
        self.conn, self.moveit, self.arm, self.s = conn, moveit, arm, settings
        self.cv = threading.Condition()
        self.pending = None
        self.stopped_seq = 0  # every item with seq <= this was cancelled
        self.quit = False
        self.executing = False
        self.running_seq = 0  # the item being executed
        self.preempted_seq = 0  # an execution stopped because a newer chunk path came
        self.reading = False
        self.send_lock = threading.Lock()

    def send(self, *msg) -> None:
        with self.send_lock:
            self.conn.send(msg)

    # ------------------------------------------------------------------ inbox (its own thread)
    def _read(self) -> None:
        while True:
            try:
                self.conn.poll(None)  # wait for a message without taking it: _catch_up still sees it
                with self.cv:
                    self.reading = True
                    msg = self.conn.recv()
            except (EOFError, OSError):
                msg = ("quit",)
            kind = msg[0]
            with self.cv:
                self.reading = False
                preempt = False
                if kind in ("goal", "path"):
                    if self.pending is not None:
                        self.send("superseded", self.pending[1])
                    self.pending = msg
                    # a newer chunk path replaces the one running (the executor plans from the newest chunk);
                    # a single goal waits for the running one to end (goals come every tick)
                    preempt = kind == "path" and self.executing
                    if preempt:
                        self.preempted_seq = self.running_seq
                elif kind == "stop":
                    if self.pending is not None:
                        self.send("superseded", self.pending[1])
                    self.pending, self.stopped_seq = None, max(self.stopped_seq, msg[1])
                    executing = self.executing
                elif kind == "quit":
                    self.quit = True
                self.cv.notify_all()
            if (kind == "stop" and executing) or (kind in ("goal", "path") and preempt):
                self._stop_execution()
            if kind == "quit":
                if self.executing:
                    self._stop_execution()
                return

    def _catch_up(self) -> None:
        """Let the inbox take every message already in the pipe: it could not run while plan() held the GIL,
        and a stop or a newer goal sent meanwhile must decide whether this plan is executed."""
        while True:
            with self.cv:
                if self.quit or (not self.reading and not self.conn.poll(0)):
                    return
            time.sleep(0.001)

    def _stop_execution(self) -> None:
        try:
            self.moveit.get_trajectory_execution_manager().stop_execution(True)
        except Exception:  # noqa: BLE001 - reported; the controller's own limits still apply
            self.send("failed", self.stopped_seq, "MoveIt stop_execution failed: " + traceback.format_exc(limit=2))

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        threading.Thread(target=self._read, name="moveit_inbox", daemon=True).start()
        while True:
            with self.cv:
                while self.pending is None and not self.quit:
                    self.cv.wait()
                if self.quit:
                    return
                item, self.pending = self.pending, None
            seq = item[1]
            try:
                trajectory, what = self._plan_goal(item) if item[0] == "goal" else self._plan_path(item)
                if trajectory is None:
                    self.send("failed", seq, what)
                    continue
                self._catch_up()
                with self.cv:
                    cancelled = seq <= self.stopped_seq or self.pending is not None or self.quit
                    self.executing = not cancelled
                    self.running_seq = seq
                if cancelled:  # a stop or a newer goal came while planning
                    self.send("superseded", seq)
                    continue
                try:
                    # Jazzy: execute(robot_trajectory, controllers) -> ExecutionStatus (bool, .status); GIL released
                    result = self.moveit.execute(trajectory, controllers=[])
                finally:
                    with self.cv:
                        self.executing = False
                ok = True if result is None else bool(result)
                with self.cv:
                    ok = ok and seq > self.stopped_seq
                    preempted = seq == self.preempted_seq
                if preempted:
                    self.send("superseded", seq)
                    continue
                self.send("done", seq, ok, f"{what}: {getattr(result, 'status', result)}")
            except Exception as exc:  # noqa: BLE001 - a failed goal must not end the worker; the next one is tried
                self.send("failed", seq, f"MoveIt goal failed: {type(exc).__name__}: {exc}")

    def _pose_stamped(self, pose, frame: str, stamp_ns: int = 0):
        from geometry_msgs.msg import PoseStamped

        msg = PoseStamped()
        msg.header.frame_id = frame
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        p = msg.pose
        p.position.x, p.position.y, p.position.z = (float(v) for v in pose[:3])
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in pose[3:7])
        return msg

    def _plan_goal(self, item):
        _, seq, pose, frame, stamp_ns = item
        self.arm.set_start_state_to_current_state()
        goal = self._pose_stamped(pose, frame, stamp_ns)
        self.arm.set_goal_state(pose_stamped_msg=goal, pose_link=self.s["tip_link"])
        plan = self.arm.plan()  # the request of plan_request_params (pipeline, scaling), checked at start
        if not plan:
            return None, f"MoveIt found no plan to {[round(float(v), 3) for v in pose[:7]]}"
        return plan.trajectory, "plan"

    def _plan_path(self, item):
        from moveit.core.robot_state import RobotState
        from moveit.core.robot_trajectory import RobotTrajectory
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        _, seq, poses, times_s, frame = item
        group, tip = self.s["group"], self.s["tip_link"]
        self.arm.set_start_state_to_current_state()
        start = self.arm.get_start_state()
        state = RobotState(self.moveit.get_robot_model())
        state.set_joint_group_positions(group, start.get_joint_group_positions(group))
        msg = JointTrajectory()
        t0 = float(times_s[0])
        for i, (pose, t) in enumerate(zip(poses, times_s)):
            if not state.set_from_ik(group, self._pose_stamped(pose, frame).pose, tip, self.s["ik_timeout_s"]):
                where = [round(float(v), 3) for v in pose[:3]]
                return None, f"MoveIt found no IK for keyframe {i} of the chunk at {where}"
            point = JointTrajectoryPoint(positions=[float(q) for q in state.get_joint_group_positions(group)])
            dt = max(float(t) - t0, 0.0)
            point.time_from_start.sec, point.time_from_start.nanosec = divmod(int(round(dt * 1e9)), 1_000_000_000)
            msg.points.append(point)
        msg.joint_names = list(self.moveit.get_robot_model().get_joint_model_group(group).active_joint_model_names)
        trajectory = RobotTrajectory(self.moveit.get_robot_model())
        trajectory.joint_model_group_name = group
        trajectory.set_robot_trajectory_msg(start, msg)
        if not trajectory.apply_totg_time_parameterization(self.s["velocity_scaling"], self.s["acceleration_scaling"]):
            return None, "MoveIt could not time-parameterise the chunk (TOTG)"
        with self.moveit.get_planning_scene_monitor().read_only() as scene:
            if not scene.is_path_valid(trajectory, group):
                return None, "the chunk's joint path collides or violates a constraint in the planning scene"
        return trajectory, f"chunk of {len(poses)} keyframes"
