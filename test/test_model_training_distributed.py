"""Data-parallel training under ``accelerate launch``: 2 CPU processes (DDP over gloo) against 1.

The weights after a few steps must equal (float tolerance) a one-process run with the same global
batch and seed, each process must load only its half of every batch, and a checkpoint written with
one process count must resume with the other.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("_train_worker.py")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out: Path, processes: int, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent)}
    if processes == 1:
        cmd = [sys.executable, str(WORKER)]
    else:
        # On a machine without CUDA, Accelerate's multi-GPU launcher (torchrun) runs DDP over gloo on the CPU.
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), str(WORKER)]
    r = subprocess.run(cmd + [str(out), *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    files = list((out / "run" / "model" / "denoiser").glob("*.safetensors"))
    assert len(files) == 1, files
    return load_file(files[0])


def _distance(a: dict, b: dict) -> float:
    """L2 distance over all weights. Not the largest single difference: Adam divides each gradient by
    its own magnitude, so a weight whose gradient is ~0 moves by up to the learning rate on float noise
    alone (seen: 0.1 % of the weights 1e-5..2e-4 apart after 3 steps while the losses agree to 1e-7)."""
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5


def _clips(out: Path, rank: int) -> np.ndarray:
    path = out / f"clips_rank{rank}.txt"
    return np.loadtxt(path, dtype=int).reshape(-1) if path.is_file() else np.zeros(0, dtype=int)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    _run(root / "one", 1, "--steps", "3")
    _run(root / "two", 2, "--steps", "3")
    _run(root / "other_seed", 1, "--steps", "3", "--seed", "7")
    return root


def test_two_processes_train_the_same_weights_as_one(runs):
    one, two, other = _weights(runs / "one"), _weights(runs / "two"), _weights(runs / "other_seed")
    assert one.keys() == two.keys()
    same = _distance(one, two)
    apart = _distance(one, other)
    assert same < 1e-3, same  # seen: 3.6e-4 over 48k weights
    assert apart > 1e3 * max(same, 1e-6), (same, apart)  # the check tells runs apart (seen: 22.5)


def test_each_process_loads_its_own_half_of_every_batch(runs):
    single = _clips(runs / "one", 0)
    r0, r1 = _clips(runs / "two", 0), _clips(runs / "two", 1)
    # Before the loop every process reads clip 0 twice (the data contract check, the view count).
    assert list(single[:2]) == list(r0[:2]) == list(r1[:2]) == [0, 0]
    single, r0, r1 = single[2:], r0[2:], r1[2:]
    assert len(single) == 3 * 4 and len(r0) == len(r1) == 3 * 2  # 3 steps, global batch 4
    for step in range(3):
        whole = single[4 * step:4 * step + 4]
        assert list(r0[2 * step:2 * step + 2]) == list(whole[:2])
        assert list(r1[2 * step:2 * step + 2]) == list(whole[2:])


def test_a_checkpoint_resumes_with_the_other_process_count(runs):
    # one (written by 1 process) continues on 2, two (written by 2) continues on 1: both reach step 5
    # from equal states with the same data order, so they must agree again.
    _run(runs / "one", 2, "--steps", "5")
    _run(runs / "two", 1, "--steps", "5")
    a, b = _weights(runs / "one"), _weights(runs / "two")
    assert _distance(a, b) < 1e-3
    state = torch.load(sorted((runs / "one" / "run" / "checkpoints").glob("step_*"))[-1] / "training_state.pt",
                       weights_only=False)
    assert state["step"] == 5 and state["num_processes"] == 2 and state["resumes"] == 1


def test_gradient_accumulation_matches_the_whole_batch(tmp_path):
    _run(tmp_path / "whole", 1, "--steps", "2")
    _run(tmp_path / "accumulated", 1, "--steps", "2", "--accumulation", "2")
    assert _distance(_weights(tmp_path / "whole"), _weights(tmp_path / "accumulated")) < 1e-3


def test_two_processes_decay_the_learning_rate_by_rank_0s_clock(tmp_path):
    # A cosine decay over a time budget: each rank applies the optimiser step with its own scheduler, so every
    # rank must read the same progress (rank 0's clock) or their weights drift apart under DDP.
    out = tmp_path / "timed"
    _run(out, 2, "--steps", "100000", "--time-budget", "6", "--lr-final-ratio", "0.1", "--checkpoint-every", "100000")
    r0, r1 = np.loadtxt(out / "lr_rank0.txt"), np.loadtxt(out / "lr_rank1.txt")
    assert len(r0) == len(r1) > 5, (len(r0), len(r1))  # both stopped after the same step (rank 0's decision)
    np.testing.assert_array_equal(r0, r1)  # the same factor at every step, bit for bit
    factors = r0[1:, 1]  # row 0: the factor LambdaLR reads when it is built; then one row per optimiser step
    assert np.all(np.diff(factors) <= 0), factors  # the cosine only falls
    # The last step ends the budget: progress 1, the final ratio exactly. The first is well above it (the first
    # step, with DDP's set-up, takes a share of the budget that depends on the machine's load).
    assert factors[-1] == pytest.approx(0.1) and factors[0] > 0.5, (factors[0], factors[-1])
    state = torch.load(sorted((out / "run" / "checkpoints").glob("step_*"))[-1] / "training_state.pt",
                       weights_only=False)
    assert state["elapsed_s"] >= 6.0 and state["step"] == len(r0) - 1  # stopped by the budget
