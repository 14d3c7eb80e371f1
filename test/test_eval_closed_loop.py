"""The closed loop of ``action-images eval`` in the real simulated cell: policy runner + the robot's
chunk executor + safety envelope on simulated time."""

import numpy as np
import pytest

from action_images_ros.control.chunk_execution import ChunkExecutor, ExecutionConfig
from action_images_ros.control.safety import SafetyConfig, SafetyEnvelope
from action_images_ros.eval.closed_loop import ClosedLoopConfig, run_episode, summarize
from action_images_ros.model.config import ModelConfig
from action_images_ros.model.factory import build_pipeline
from action_images_ros.policy import PolicyRunner
from action_images_ros.sim import make_env


@pytest.fixture(scope="module")
def env():
    e = make_env("reach_target", image_size=64)
    yield e
    e.close()


@pytest.fixture(scope="module")
def runner(env):
    pipe = build_pipeline(ModelConfig(image_size=32, num_future=2, block_out_channels=(8, 16)))
    return PolicyRunner(pipe, env.cameras, num_inference_steps=2)


def test_refused_chunks_leave_the_arm_where_it_was(env, runner):
    # a box that excludes the start pose: every command is refused, the arm must not move
    refuse = SafetyEnvelope(SafetyConfig(workspace_min=(0.7, 0.2, 0.5), workspace_max=(0.8, 0.3, 0.6),
                                         workspace_clamp_margin_m=0.0, min_confidence=0.0))
    executor = ChunkExecutor(ExecutionConfig(min_confidence=0.0), refuse)
    start = env.reset(3).ee_pose
    out = run_episode(env, runner, executor, seed=3, config=ClosedLoopConfig(max_steps=6), record=True)
    assert out.steps == 6 and out.predictions >= 1
    assert out.stats["commands"] == 0 and out.stats["chunks_dropped"] >= 1
    assert out.frames[0].shape == (32, 3 * 32, 3)
    assert np.linalg.norm(env.ee_pose()[:3] - start[:3]) < 5e-3


def test_latency_delays_the_first_command_by_exactly_that_much_simulated_time(env, runner):
    executor = ChunkExecutor(ExecutionConfig(min_confidence=0.0), SafetyEnvelope(SafetyConfig(min_confidence=0.0)))
    out = run_episode(env, runner, executor, seed=4, config=ClosedLoopConfig(latency_s=0.3, max_steps=8,
                                                                             record_commands=True))
    assert out.commands, "no command was sent"
    assert out.commands[0][0] == pytest.approx(0.3)  # the chunk of t = 0 arrives at t = 0.3 s, not before
    assert out.stats["max_late_s"] == pytest.approx(0.3)


def test_shipped_model_reaches_the_target_and_the_summary_counts_it():
    from pathlib import Path

    from action_images_ros.config import execution_config_for
    from action_images_ros.control.safety import load_safety_config
    from action_images_ros.model_io import load_policy

    repo = Path(__file__).resolve().parents[1]
    pipe, policy_cfg = load_policy(repo / "models" / "tiny")
    safety = load_safety_config(repo / "config" / "safety.yaml")
    e = make_env("reach_target", image_size=128)
    try:
        runner = PolicyRunner(pipe, e.cameras)
        assert runner.num_inference_steps == policy_cfg.num_inference_steps  # the model folder's default
        executor = ChunkExecutor(execution_config_for(repo / "models" / "tiny", None, safety.min_confidence),
                                 SafetyEnvelope(safety))
        out = run_episode(e, runner, executor, seed=100_000)
    finally:
        e.close()
    s = summarize("reach_target", [out], "direct")
    assert out.success and s["successes"] == 1 and s["stalls"] == 0
    assert s["commands"] == out.steps  # lockstep: one command every tick


def test_runner_rejects_bad_frames(env, runner):
    obs = env.reset(0)
    with pytest.raises(ValueError, match="V=3"):
        runner.predict(obs.images[:2], obs.ee_pose)
    with pytest.raises(ValueError, match="uint8"):
        runner.predict(obs.images.astype(np.float32), obs.ee_pose)
    with pytest.raises(ValueError, match="calibrated for"):
        runner.predict(obs.images[:, :32], obs.ee_pose)
    with pytest.raises(ValueError, match="8 finite values"):
        runner.predict(obs.images, np.full(8, np.nan))
    with pytest.raises(ValueError, match="at least 2"):
        PolicyRunner(runner.pipeline, env.cameras[:1])


def test_eval_policy_rig_gives_the_policy_those_extrinsics(tmp_path, capsys):
    """`eval --policy-rig`: the true rig as the policy's gives the same episode; a far-off one changes it."""
    import json
    from pathlib import Path

    import yaml

    from action_images_ros.cli import main

    repo = Path(__file__).resolve().parents[1]

    def run(name, *extra):
        out = tmp_path / name
        assert main(["eval", "--model", str(repo / "models" / "tiny"), "--task", "reach_target", "--episodes", "1",
                     "--seed-offset", "100000", "--no-videos", "--out", str(out), *extra]) == 0
        return json.loads((out / "results.json").read_text())["per_episode"][0]

    base = run("base")
    assert run("same", "--policy-rig", str(repo / "config" / "cameras_sim.yaml")) == base
    rig = yaml.safe_load((repo / "config" / "cameras_sim.yaml").read_text())
    cams = rig["cameras"] if isinstance(rig, dict) and "cameras" in rig else rig
    first = cams[0]
    first["position"] = [float(v) + 0.05 for v in first["position"]]  # 5 cm off in x, y, z
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump(rig))
    assert run("off", "--policy-rig", str(off)) != base
    one = tmp_path / "one.yaml"
    one_rig = dict(rig, cameras=cams[:1]) if isinstance(rig, dict) and "cameras" in rig else cams[:1]
    one.write_text(yaml.safe_dump(one_rig))
    assert main(["eval", "--model", str(repo / "models" / "tiny"), "--task", "reach_target", "--episodes", "1",
                 "--no-videos", "--out", str(tmp_path / "x"), "--policy-rig", str(one)]) == 2
    assert "has no camera(s) ['left_shoulder', 'right_shoulder']" in capsys.readouterr().err
