"""Training loop: AdamW, optional EMA, periodic checkpoints, resume, loss curve.

Layout of ``out_dir``::

    model_config.yaml  train_config.yaml     the configurations of the run
    checkpoints/step_0000200/pipeline/       raw weights (save_pretrained)
    checkpoints/step_0000200/training_state.pt  optimiser, EMA, step, time, history
    model/                                   final pipeline (EMA weights when enabled)
    metrics.jsonl  loss_curve.png            logged losses and their plot

Calling :func:`train` again with the same ``out_dir`` resumes from the latest
checkpoint (step, elapsed time, optimiser and EMA state, loss history).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate.utils import DistributedType
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)

from .config import ModelConfig, TrainConfig
from .factory import build_pipeline
from .objective import TrainedNetwork, flow_matching_loss, sample_modes
from .pipeline import ActionImagesPipeline
from .precision import bf16_is_fast

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FINAL_DIR = "model"
#: The run's ``config.PolicyConfig`` (clip / execution settings), written by ``action-images train``;
#: :func:`export_checkpoint` registers it with the exported pipeline.
POLICY_CONFIG_FILE = "policy_config.json"


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        pipeline: the trained pipeline (EMA weights when EMA is enabled).
        out_dir: the run folder; the final model is in ``out_dir / "model"``.
        steps: optimiser steps done in total (over all resumes).
        elapsed_s: training wall time in total (seconds).
        history: logged points ``{"step", "loss", "rgb", "action", ("gripper": models with a read-out,) "elapsed_s", "lr"}``.
    """

    pipeline: ActionImagesPipeline
    out_dir: Path
    steps: int
    elapsed_s: float
    history: list[dict]

    @property
    def final_loss(self) -> float:
        return float(self.history[-1]["loss"]) if self.history else float("nan")


# --------------------------------------------------------------------------- checkpoints
def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoints/step_*`` folder of a run, or None."""
    root = Path(out_dir) / CHECKPOINT_DIR
    done = sorted(p for p in root.glob("step_*") if (p / "training_state.pt").is_file())
    return done[-1] if done else None


def trained_modules(pipe: ActionImagesPipeline) -> list[torch.nn.Module]:
    """The modules training updates (and averages): the denoiser, and the view mixer, the action head and
    the gripper read-out where there are."""
    return [pipe.denoiser] + [m for m in (pipe.view_mixer, pipe.action_head, pipe.gripper_readout) if m is not None]


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """Write the pipeline of a training checkpoint to ``out_dir`` (EMA weights when it has them).

    Lets a run be evaluated, or shipped, at any checkpoint while training goes on.
    The run's policy settings (``policy_config.json`` two levels up, or an older run's
    ``clip_config.json``) are registered with / copied along to the export.

    Raises:
        FileNotFoundError: ``checkpoint`` is not a complete checkpoint folder.
    """
    ckpt = Path(checkpoint)
    if not (ckpt / "training_state.pt").is_file() or not (ckpt / "pipeline").is_dir():
        raise FileNotFoundError(f"{ckpt} is not a complete checkpoint (needs pipeline/ and training_state.pt)")
    pipe = ActionImagesPipeline.from_pretrained(ckpt / "pipeline")
    state = torch.load(ckpt / "training_state.pt", map_location="cpu", weights_only=False)
    if use_ema and state.get("ema") is not None:
        from diffusers.training_utils import EMAModel

        params = [p for m in trained_modules(pipe) for p in m.parameters() if p.requires_grad]
        ema = EMAModel(params, decay=0.0)
        ema.load_state_dict(state["ema"])
        if len(ema.shadow_params) != len(params):
            raise ValueError(f"{ckpt}: its EMA holds {len(ema.shadow_params)} tensors but the pipeline trains "
                             f"{len(params)}; the checkpoint does not belong to this pipeline")
        ema.copy_to(params)
    out = Path(out_dir)
    run_dir = ckpt.parent.parent
    if (run_dir / POLICY_CONFIG_FILE).is_file():
        pipe.set_policy_config(json.loads((run_dir / POLICY_CONFIG_FILE).read_text()))
    pipe.save_pretrained(out)
    legacy = run_dir / "clip_config.json"
    if legacy.is_file() and pipe.policy_cfg is None:
        shutil.copy(legacy, out / legacy.name)
    logger.info("exported %s (step %d, %s weights) to %s", ckpt, int(state.get("step", -1)),
                "EMA" if use_ema and state.get("ema") is not None else "raw", out)
    return out


def _save_checkpoint(out_dir: Path, step: int, pipe: ActionImagesPipeline, state: dict, keep: int) -> Path:
    root = out_dir / CHECKPOINT_DIR
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp / "pipeline")
    torch.save(state, tmp / "training_state.pt")  # written last: marks the checkpoint complete
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    old = sorted(p for p in root.glob("step_*") if p != final)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def plot_loss_curve(history: list[dict], path: str | Path) -> None:
    """Write a PNG of the logged total, RGB and action losses against the step (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(steps, [h["loss"] for h in history], label="total")
    ax.plot(steps, [h["rgb"] for h in history], label="future RGB", alpha=0.8)
    ax.plot(steps, [h["action"] for h in history], label="action images", alpha=0.8)
    if "gripper" in history[0]:
        ax.plot(steps, [h["gripper"] for h in history], label="gripper read-out", alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- data
class ShardedBatchSampler(torch.utils.data.Sampler):
    """Endless batches of clip indices: this process's share of every micro-batch of every optimiser step.

    Every process draws the same global order (a fresh permutation per epoch, or with ``weights`` a
    weighted draw with replacement), cuts it into global batches of ``global_batch`` clips and each of
    those into ``parts = num_processes x accumulation`` equal shards: shard ``m * num_processes + rank``
    is micro-batch ``m`` of process ``rank``. So a process loads only its own clips, and the union over
    processes and micro-batches of one step is exactly the batch one process would take alone.

    Args:
        num_clips: dataset length.
        global_batch: clips per optimiser step over all processes and micro-batches.
        rank, num_processes, accumulation: where this process's shards sit.
        seed: seeds the order (epoch ``e`` uses ``seed * 7919 + e``).
        weights: per-clip sampling weights (task balance), or None for plain shuffling.
    """

    def __init__(self, num_clips: int, global_batch: int, rank: int = 0, num_processes: int = 1,
                 accumulation: int = 1, seed: int = 0, weights: torch.Tensor | None = None) -> None:
        parts = num_processes * accumulation
        if num_clips < 1:
            raise ValueError("the training dataset is empty")
        batch = global_batch if num_clips >= global_batch else num_clips  # a tiny set is one whole batch
        if batch % parts:
            raise ValueError(f"a global batch of {batch} clips cannot be split evenly over {num_processes} "
                             f"process(es) x {accumulation} accumulation step(s); make batch_size a multiple "
                             f"of {parts} (and the dataset at least that large)")
        self.num_clips, self.batch, self.shard = num_clips, batch, batch // parts
        self.rank, self.num_processes, self.accumulation = rank, num_processes, accumulation
        self.seed, self.weights = seed, weights

    def shard_offset(self, micro: int) -> int:
        """First row of this process's shard of micro-batch ``micro`` in the global batch."""
        return (micro * self.num_processes + self.rank) * self.shard

    def __iter__(self):
        epoch = 0
        while True:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            order = (torch.randperm(self.num_clips, generator=g) if self.weights is None else
                     torch.multinomial(self.weights, self.num_clips, replacement=True, generator=g))
            for start in range(0, self.num_clips - self.batch + 1, self.batch):
                for micro in range(self.accumulation):
                    first = start + self.shard_offset(micro)
                    yield order[first:first + self.shard].tolist()
            epoch += 1


def _clip_weights(dataset, cfg: TrainConfig) -> torch.Tensor | None:
    """Per-clip sampling weights: every task of ``dataset.clip_tasks()`` the same share (``balance_tasks``)
    or the share ``task_shares`` gives it, and clips with a gripper event ``gripper_event_weight`` times as likely as the others of their task;
    None (plain shuffling) when neither is asked for."""
    balance, event_weight = cfg.balance_tasks or cfg.task_shares is not None, cfg.gripper_event_weight
    if not balance and event_weight == 1.0:
        return None
    for need, method in ((balance, "clip_tasks"), (event_weight != 1.0, "clip_gripper_events")):
        if need and not hasattr(dataset, method):
            raise ValueError(f"balance_tasks / task_shares / gripper_event_weight need a dataset with {method}() "
                             "(ActionClipDataset)")
    weights = np.ones(len(dataset))
    if event_weight != 1.0:
        events = np.asarray(dataset.clip_gripper_events(), dtype=bool)
        weights[events] = event_weight
        logger.info("gripper-event clips drawn x%g (%d of %d clips)", event_weight, events.sum(), len(events))
    if balance:  # after the event weights: each task's total stays equal
        tasks = np.asarray(dataset.clip_tasks())
        names, inverse = np.unique(tasks, return_inverse=True)
        totals = np.bincount(inverse, weights=weights)
        shares = np.ones(len(names))
        if cfg.task_shares is not None:
            missing = sorted(set(names.tolist()) - set(cfg.task_shares))
            if missing:
                raise ValueError(f"task_shares {cfg.task_shares} does not name the data's task(s) {missing}")
            shares = np.array([cfg.task_shares[str(n)] for n in names])
            extra = sorted(set(cfg.task_shares) - set(names.tolist()))
            if extra:
                logger.warning("task_shares names task(s) %s that the data does not hold; ignored", extra)
        logger.info("task shares %s over %s (clips %s)", np.round(shares / shares.sum(), 3).tolist(),
                    list(names), np.bincount(inverse).tolist())
        weights = weights / totals[inverse] * shares[inverse]
    return torch.as_tensor(weights, dtype=torch.float64)


def _batches(dataset, cfg: TrainConfig, epoch_seed: int, rank: int = 0, num_processes: int = 1):
    """``(sampler, endless iterator of collated local micro-batches)`` for one process."""
    sampler = ShardedBatchSampler(len(dataset), cfg.batch_size, rank, num_processes,
                                  cfg.gradient_accumulation_steps, epoch_seed, _clip_weights(dataset, cfg))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                                         persistent_workers=cfg.num_workers > 0)
    return sampler, iter(loader)


def _check_item(dataset, cfg: ModelConfig) -> None:
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    item = dataset[0]
    need = ("cond_rgb", "cond_action", "future_rgb", "future_action", "K", "T_world_cam")
    heads = cfg.action_output == "head" or cfg.gripper_readout  # they read the pose, train on the future poses
    need += ("state",) if cfg.use_state or heads else ()
    need += ("actions",) if heads else ()
    need += ("instruction",) if cfg.use_instruction else ()
    missing = [k for k in need if k not in item]
    if missing:
        raise ValueError(f"dataset items lack key(s) {missing}; each item must be a dict with {list(need)}")
    shape = tuple(np.shape(item["future_rgb"]))
    S, F = cfg.image_size, cfg.num_future
    if len(shape) != 5 or shape[1:] != (F, 3, S, S):
        raise ValueError(f"dataset future_rgb items are {shape}, the model needs (V, {F}, 3, {S}, {S}); "
                         f"match the model's num_future / image_size to the data")


# --------------------------------------------------------------------------- the loop
def make_accelerator(cfg: TrainConfig, device: str | None = None):
    """The run's ``accelerate.Accelerator``: processes and devices from ``accelerate launch`` (one process
    without it), mixed precision and gradient accumulation from ``cfg``; ``device="cpu"`` forces the CPU."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    # Accelerate keeps its mixed-precision setting in a process-wide singleton; one process may train
    # several runs in turn (tests, sweeps), each with its own setting. The process group is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    # find_unused_parameters: a mode that drops a stream can leave conditioning weights without a gradient.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                      cpu=device == "cpu", kwargs_handlers=[ddp])
    if acc.mixed_precision == "bf16" and not bf16_is_fast(acc.device):
        logger.warning("mixed_precision: bf16 -> no: %s has no native bf16 kernels (emulated bf16 ran 18x slower "
                       "than float32 on such a CPU)", acc.device)
        AcceleratorState._reset_state(reset_partial_state=False)
        acc = Accelerator(mixed_precision="no", gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                          cpu=device == "cpu", kwargs_handlers=[ddp])
    return acc


def train(pipeline_or_config: ActionImagesPipeline | ModelConfig, dataset, train_config: TrainConfig,
          out_dir: str | Path, device: str | None = None, policy_config=None) -> TrainResult:
    """Train (or resume training of) a pipeline on ``dataset``, in this process or as one rank of many.

    Run under ``accelerate launch --num_processes N`` (or torchrun) it is data-parallel: every process
    loads its own shard of each batch (``batch_size`` stays the clips of one optimiser step over all
    processes, so the learning rate means the same for any N), gradients are averaged, rank 0 alone logs,
    plots and writes checkpoints, and all ranks stop at the same step when the time budget (rank 0's
    clock) runs out. A checkpoint written with one N resumes with any other.

    Args:
        pipeline_or_config: a pipeline to fine-tune, or a :class:`ModelConfig` to build one from.
        dataset: a map-style dataset of dicts with the keys of the data contract.
        train_config: the run's :class:`TrainConfig`.
        out_dir: run folder; if it holds a checkpoint the run resumes from it.
        device: ``"cpu"`` to keep a GPU machine's run on the CPU; default: Accelerate's device.
        policy_config: ``config.PolicyConfig`` registered with the pipeline (saved in every
            checkpoint's and the final ``model_index.json``).

    Returns:
        A :class:`TrainResult`; the final model is also saved in ``out_dir / "model"``.
    """
    cfg = train_config
    out_dir = Path(out_dir)
    requested = pipeline_or_config if isinstance(pipeline_or_config, ModelConfig) else pipeline_or_config.model_cfg
    _check_item(dataset, requested)
    if requested.action_output == "head":
        wrong = sorted(m for m in ("world_model", "label") if cfg.mode_probs.get(m, 0.0) > 0)
        if wrong:
            raise ValueError(f"an action-head model (action_output: head) has no action-image stream, so it cannot "
                             f"train the mode(s) {wrong}; set mode_probs to policy and video only")
    acc = make_accelerator(cfg, device)
    main = acc.is_main_process
    sharded = acc.distributed_type == DistributedType.FSDP
    if sharded and cfg.ema_decay > 0:
        raise ValueError("ema_decay > 0 is not supported with FSDP (the average would be sharded too); set "
                         "ema_decay: 0, or train with DDP where the model fits one device")
    if acc.distributed_type not in _LOOP_DISTRIBUTED_TYPES:
        raise ValueError(f"accelerate's {acc.distributed_type} is not supported by this loop; use DDP (multi-GPU or "
                         f"multi-CPU) or FSDP")
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()

    # 1. Model and state: resume from the latest checkpoint or start fresh (every rank reads the same one).
    ckpt = latest_checkpoint(out_dir)
    state: dict = {"step": 0, "elapsed_s": 0.0, "history": [], "resumes": 0}
    if ckpt is not None:
        pipe = ActionImagesPipeline.from_pretrained(ckpt / "pipeline")
        if pipe.model_cfg.to_dict() != requested.to_dict():
            raise ValueError(f"{out_dir} holds a run of a different model configuration; resume with the same "
                             f"config or use a new out_dir")
        state = torch.load(ckpt / "training_state.pt", map_location="cpu", weights_only=False)
        state["resumes"] = state.get("resumes", 0) + 1
        logger.info("resuming from %s (step %d, %.0f s trained, written by %s process(es); now %d)", ckpt,
                    state["step"], state["elapsed_s"], state.get("num_processes", 1), acc.num_processes)
    elif isinstance(pipeline_or_config, ModelConfig):
        pipe = build_pipeline(pipeline_or_config, num_views=int(dataset[0]["cond_rgb"].shape[0]))
    else:
        pipe = pipeline_or_config
    if main:
        (out_dir / "model_config.yaml").write_text(yaml.safe_dump(pipe.model_cfg.to_dict(), sort_keys=False))
        (out_dir / "train_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    pipe.to(acc.device)
    if pipe.vae is not None:
        pipe.vae.requires_grad_(False).eval()  # frozen: not part of the wrapped (sharded) network
    if cfg.gradient_checkpointing:
        if not getattr(pipe.denoiser, "_supports_gradient_checkpointing", False):
            raise ValueError(f"gradient_checkpointing: {type(pipe.denoiser).__name__} does not support it")
        pipe.denoiser.enable_gradient_checkpointing()
    trained = trained_modules(pipe)
    for m in trained:
        m.train()
    if cfg.freeze_denoiser:
        if pipe.action_head is None and pipe.gripper_readout is None:
            raise ValueError("freeze_denoiser: this model has no action head or gripper read-out to train")
        for m in (pipe.denoiser, pipe.view_mixer):  # the mixer is part of the network that draws the images
            if m is not None:
                m.requires_grad_(False).eval()
    params = [p for m in trained for p in m.parameters() if p.requires_grad]
    if policy_config is not None:
        pipe.set_policy_config(policy_config)  # saved with every checkpoint and the final model

    # 2. Optimiser, warm-up schedule, EMA; then the network wrapped for the processes (DDP over gloo or NCCL).
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    progress = [_progress(int(state["step"]), float(state["elapsed_s"]), cfg)]  # read by the schedule each step
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, progress[0], cfg))
    ema = None
    if cfg.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, decay=cfg.ema_decay)
    if ckpt is not None:
        if not _by_name(state["optimizer"]):  # a checkpoint written before the loop ran on Accelerate
            opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
    if ema is not None:
        ema.to(acc.device)
    teacher = None
    if cfg.distill_from:
        from .distillation import Teacher

        teacher = Teacher(ActionImagesPipeline.from_pretrained(cfg.distill_from).to(acc.device), cfg.distill_steps)
        fields = ("denoiser_type", "image_size", "num_future", "input_mean", "input_std", "residual_to_current")
        differ = [f for f in fields if getattr(teacher.pipe.model_cfg, f) != getattr(pipe.model_cfg, f)]
        if differ or (teacher.pipe.vae is None) != (pipe.vae is None):
            raise ValueError(f"distill_from {cfg.distill_from}: the teacher's samples live in another stream space "
                             f"than this model's ({differ or ['vae']} differ)")
    network, opt = acc.prepare(TrainedNetwork(pipe, autocast=None), opt)
    params = [p for p in network.parameters() if p.requires_grad]  # FSDP replaces them with shards
    if ckpt is not None and _by_name(state["optimizer"]):
        set_optimizer_state_dict(network, opt.optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))

    def checkpoint() -> None:
        """Every rank takes part (gathering is collective under FSDP); rank 0 writes."""
        optimizer = get_optimizer_state_dict(network, opt.optimizer, options=_FULL_ON_CPU)  # by parameter name
        whole = _whole_pipeline(pipe, network) if sharded else pipe
        if main:
            _save_checkpoint(out_dir, step, whole, {
                "step": step, "elapsed_s": elapsed, "history": history, "resumes": state["resumes"],
                "num_processes": acc.num_processes, "optimizer": optimizer, "lr_scheduler": sched.state_dict(),
                "ema": ema.state_dict() if ema is not None else None}, cfg.keep_checkpoints)
            plot_loss_curve(history, out_dir / "loss_curve.png")
        acc.wait_for_everyone()

    # 3. Loop: one optimiser step = `accumulation` micro-batches on each of the processes.
    step, elapsed, history = int(state["step"]), float(state["elapsed_s"]), list(state["history"])
    sampler, batches = _batches(dataset, cfg, cfg.seed + 1000 * state["resumes"], acc.process_index,
                                acc.num_processes)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (cfg.progress and main), desc="train", unit="step")
    window: list[tuple[float, float, float, float]] = []
    readout = pipe.gripper_readout is not None
    t_last = time.monotonic()
    metrics = (out_dir / "metrics.jsonl").open("a") if main else None
    try:
        while not _should_stop(step, elapsed, cfg):
            modes = sample_modes(sampler.batch, cfg.mode_probs, np.random.default_rng([cfg.seed, step]))
            parts_sum = np.zeros(4)
            for micro in range(cfg.gradient_accumulation_steps):
                batch = next(batches)
                with acc.accumulate(network):
                    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # the step's noise, sliced
                    parts = flow_matching_loss(pipe, batch, modes, generator=gen, offset=sampler.shard_offset(micro),
                                               network=network, teacher=teacher)
                    acc.backward(parts.loss)
                    if acc.sync_gradients and cfg.grad_clip > 0:
                        acc.clip_grad_norm_(params, cfg.grad_clip)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                parts_sum += (float(parts.loss.detach()), parts.rgb, parts.action, parts.gripper or 0.0)
            now = time.monotonic()
            elapsed = _rank0_clock(acc, elapsed + now - t_last, cfg)
            t_last = now
            progress[0] = _progress(step + 1, elapsed, cfg)
            sched.step()
            if ema is not None:
                ema.step(params)
            step += 1
            window.append(tuple(parts_sum / cfg.gradient_accumulation_steps))
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                w = _mean_over_processes(acc, window)
                window.clear()
                point = _log_point(step, w, elapsed, sched.get_last_lr()[0], readout)
                history.append(point)
                if main:
                    metrics.write(json.dumps(point) + "\n")
                    metrics.flush()
                    bar.set_postfix(loss=f"{w[0]:.4f}")
                    logger.info("step %d  loss %.4f (rgb %.4f, action %.4f%s)  %.0f s", step, w[0], w[1], w[2],
                                f", gripper {w[3]:.4f}" if readout else "", elapsed)
            if step % cfg.checkpoint_every == 0:
                checkpoint()
                t_last = time.monotonic()  # checkpoint time does not count as training time
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()

    # 4. Final checkpoint (resumable) and the final model (EMA weights if enabled), written by rank 0.
    if window:
        w = _mean_over_processes(acc, window)
        history.append(_log_point(step, w, elapsed, sched.get_last_lr()[0], readout))
    if step % cfg.checkpoint_every != 0:  # (every rank sees the same step)
        checkpoint()
    if ema is not None:
        ema.copy_to(params)
    for m in trained:
        m.eval()
    whole = _whole_pipeline(pipe, network) if sharded else pipe
    if main:
        whole.save_pretrained(out_dir / FINAL_DIR)
        plot_loss_curve(history, out_dir / "loss_curve.png")
        logger.info("trained %d steps in %.0f s on %d process(es); model saved to %s", step, elapsed,
                    acc.num_processes, out_dir / FINAL_DIR)
    acc.wait_for_everyone()
    return TrainResult(pipeline=pipe, out_dir=out_dir, steps=step, elapsed_s=elapsed, history=history)


_FULL_ON_CPU = StateDictOptions(full_state_dict=True, cpu_offload=True)
_LOOP_DISTRIBUTED_TYPES = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU,
                           DistributedType.FSDP)


def _by_name(optimizer_state: dict) -> bool:
    """True for an optimiser state keyed by parameter name (any process count, sharded or not), False for
    torch's own per-position one (what checkpoints held before)."""
    return any(isinstance(k, str) for k in optimizer_state.get("state", {}))


def _whole_pipeline(pipe: ActionImagesPipeline, network) -> ActionImagesPipeline:
    """Under FSDP: a CPU copy of ``pipe`` with the gathered weights (on rank 0; the gathering is collective,
    so every rank calls this). Not run on this project's CPU machines: Accelerate falls back to DDP there."""
    weights = get_model_state_dict(network, options=_FULL_ON_CPU)
    if not weights:  # ranks other than 0 receive nothing
        return pipe
    parts = {}
    for name in ("denoiser", "view_mixer", "action_head", "gripper_readout"):
        module = getattr(pipe, name)
        if module is not None:
            copy = type(module).from_config(module.config)
            copy.load_state_dict({k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(name + ".")})
            parts[name] = copy
    whole = ActionImagesPipeline(denoiser=parts["denoiser"], scheduler=pipe.scheduler, vae=pipe.vae,
                                 action_head=parts.get("action_head"), gripper_readout=parts.get("gripper_readout"),
                                 view_mixer=parts.get("view_mixer"), model_config=pipe.model_cfg.to_dict())
    if pipe.policy_cfg is not None:
        whole.set_policy_config(pipe.policy_cfg)
    return whole


def _log_point(step: int, w: np.ndarray, elapsed: float, lr: float, readout: bool) -> dict:
    """One row of the history / metrics.jsonl from the window's mean (loss, rgb, action, gripper)."""
    point = {"step": step, "loss": float(w[0]), "rgb": float(w[1]), "action": float(w[2])}
    if readout:
        point["gripper"] = float(w[3])
    return {**point, "elapsed_s": round(elapsed, 2), "lr": lr}


def lr_factor(step: int, progress: float, cfg: TrainConfig) -> float:
    """The learning rate over ``cfg.learning_rate`` at optimiser step ``step``: a linear warm-up, then a cosine
    from 1 to ``cfg.lr_final_ratio`` over the run's ``progress`` (0..1)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    r = cfg.lr_final_ratio
    return warm * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def _progress(step: int, elapsed: float, cfg: TrainConfig) -> float:
    """How far the run is, 0..1: by steps or by training time, whichever ends it first."""
    return max(step / cfg.max_steps, elapsed / cfg.time_budget_s if cfg.time_budget_s else 0.0)


def _should_stop(step: int, elapsed: float, cfg: TrainConfig) -> bool:
    return step >= cfg.max_steps or (cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s)


def _rank0_clock(acc, elapsed: float, cfg: TrainConfig) -> float:
    """Rank 0's training time on every rank, once a step, where the time budget is set: the stop decision and
    the learning rate (each rank applies the optimiser step itself) must agree across ranks, and their clocks
    differ; a rank that stops alone hangs the others. Decided on configuration only, so every rank calls it."""
    if acc.num_processes == 1 or cfg.time_budget_s is None:
        return elapsed
    from accelerate.utils import broadcast

    return float(broadcast(torch.tensor([elapsed], dtype=torch.float64, device=acc.device), from_process=0).item())


def _mean_over_processes(acc, window: list[tuple[float, ...]]) -> np.ndarray:
    """The logged (loss, rgb, action, gripper) averaged over the window's steps and over the processes."""
    w = torch.tensor(np.mean(window, axis=0), dtype=torch.float64, device=acc.device)
    return acc.reduce(w, reduction="mean").cpu().numpy() if acc.num_processes > 1 else w.cpu().numpy()
