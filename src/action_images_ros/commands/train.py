"""`action-images train`: train the joint video + action-image model on recorded episodes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path


HELP = "train the video + action-image diffusion model on episodes from `action-images generate`"
logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True,
                   help="YAML with `model:`, `train:` and `data:` (ClipConfig) sections, e.g. config/model_tiny.yaml")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="episode folders or files")
    p.add_argument("--out", type=Path, required=True, help="run folder (resumes when it holds a checkpoint)")
    p.add_argument("--held-out", type=float, default=0.1,
                   help="fraction of episodes kept out of training (every 10th by default) for evaluate-video")
    p.add_argument("--time-budget", type=float, default=None, help="override train.time_budget_s (seconds)")
    p.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="a trained model folder to start from (fine-tune; e.g. a shipped checkpoint on your own "
                        "cell's episodes): its weights, with the model configuration of --config, which must match "
                        "it; a run folder that holds a checkpoint resumes from that instead")
    p.add_argument("--stream", action="store_true",
                   help="read each clip's frames from the episode files instead of keeping every episode in "
                        "memory: bounded memory for datasets larger than RAM (set train.num_workers to hide reads)")


def check_initial_data(policy_cfg, clip_cfg, dataset, folder: Path) -> None:
    """The episodes and clip settings mean what they meant to the model in ``folder``: the same clip horizon,
    stride, image size, pose source and gripper convention, the same views in the same order, the same
    control period.

    Raises:
        ValueError: naming each setting that differs.
    """
    had = policy_cfg.clip or {}
    now = {**dataclasses.asdict(clip_cfg), "views": list(dataset.view_names)}
    keys = ("horizon", "frame_stride", "image_size", "action_source", "gripper_from_command", "views")
    differ = [f"{k}: {had[k]!r} -> {now[k]!r}" for k in keys if k in had and k in now and
              (list(had[k]) if isinstance(had[k], (list, tuple)) else had[k]) !=
              (list(now[k]) if isinstance(now[k], (list, tuple)) else now[k])]
    dts = sorted({round(float(e.control_dt), 6) for e in dataset.episodes})
    if dts != [round(float(policy_cfg.control_dt_s), 6)]:
        differ.append(f"control period: {policy_cfg.control_dt_s} s -> {dts} s")
    if differ:
        raise ValueError(f"--init-from {folder}: these data settings differ from the model's: {'; '.join(differ)}")


def initial_pipeline(pipe, folder: Path, model_cfg, num_views: int):
    """The pipeline loaded from ``folder``, ready to fine-tune with ``model_cfg``: its modules with
    ``model_cfg``'s training-objective settings (loss weights, noise levels) and, where ``model_cfg`` adds
    a gripper read-out or a view mixer the folder's model lacks, a fresh one.

    Raises:
        ValueError: its model configuration differs from ``model_cfg`` in anything else (the fields are named).
    """
    from ..model.factory import (READOUT_SETTINGS, TRAINING_SETTINGS, with_gripper_readout, with_training_settings,
                                 with_view_mixer)

    adds_readout = model_cfg.gripper_readout and not pipe.model_cfg.gripper_readout
    adds_mixer = model_cfg.view_mixer and not pipe.model_cfg.view_mixer
    have, want = pipe.model_cfg.to_dict(), model_cfg.to_dict()
    free = {*TRAINING_SETTINGS, *({"gripper_readout", *READOUT_SETTINGS} if adds_readout else ()),
            *({"view_mixer"} if adds_mixer else ())}
    differ = sorted(k for k in set(have) | set(want) if k not in free and have.get(k) != want.get(k))
    if differ:
        raise ValueError(f"--init-from {folder}: its model configuration differs from --config's in {differ}; "
                         f"fine-tune with the configuration the model was trained with (loss weights, noise "
                         f"levels, adding gripper_readout: true and adding view_mixer: true are the changes allowed)")
    if adds_mixer:
        logger.info("--init-from %s: a fresh view mixer (the identity until trained) on top of its weights", folder)
        pipe = with_view_mixer(pipe, num_views)
    if adds_readout:
        logger.info("--init-from %s: a fresh gripper read-out on top of its weights", folder)
        pipe = with_gripper_readout(pipe, num_views, **{k: getattr(model_cfg, k) for k in READOUT_SETTINGS})
        have = pipe.model_cfg.to_dict()
    changed = {k: getattr(model_cfg, k) for k in TRAINING_SETTINGS if have.get(k) != want.get(k)}
    if changed:
        logger.info("--init-from %s: fine-tuning with other training settings %s", folder, changed)
        return with_training_settings(pipe, **changed)
    return pipe


def _config_sections(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The ``model`` / ``train`` / ``data`` sections of ``path``; with ``base: other.yaml`` (relative to
    ``path``), that file's sections with these settings over them, setting by setting (an ablation names the
    one setting it changes instead of copying the recipe)."""
    from ..model.config import load_yaml_mapping

    if path.resolve() in seen:
        raise ValueError(f"{path}: 'base' files form a cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    data = load_yaml_mapping(path)
    unknown = sorted(set(data) - {"model", "train", "data", "base"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; expected model, train, data (and base)")
    merged = {}
    if "base" in data:
        merged = _config_sections(path.parent / str(data["base"]), (*seen, path.resolve()))
    for section in ("model", "train", "data"):
        if data.get(section):
            merged[section] = {**(merged.get(section) or {}), **data[section]}
    return merged


def read_config(path: Path):
    """``(ModelConfig, TrainConfig, ClipConfig)`` from one YAML file (and its ``base``, if it names one)."""
    from ..data.clips import ClipConfig
    from ..model.config import ModelConfig, TrainConfig

    data = _config_sections(Path(path))
    clip_fields = {f.name for f in dataclasses.fields(ClipConfig)}
    bad = sorted(set(data.get("data") or {}) - clip_fields)
    if bad:
        raise ValueError(f"{path}: unknown data setting(s) {bad}; known: {sorted(clip_fields)}")
    model = ModelConfig.from_dict(data.get("model"))
    clip = ClipConfig(**(data.get("data") or {}))
    if clip.horizon != model.num_future or clip.image_size != model.image_size:
        raise ValueError(f"{path}: data.horizon/image_size ({clip.horizon}, {clip.image_size}) must equal "
                         f"model.num_future/image_size ({model.num_future}, {model.image_size})")
    return model, TrainConfig.from_dict(data.get("train")), clip


def run(args: argparse.Namespace) -> int:
    """Train in this process, or as one rank of ``accelerate launch --num_processes N -m action_images_ros.cli
    train ...``: every rank builds the same dataset; rank 0 alone writes files and prints."""
    import torch
    from accelerate import PartialState

    from ..data import resolve_episode_paths, split_episodes
    from ..data.clips import ActionClipDataset
    from ..model.training import FINAL_DIR, POLICY_CONFIG_FILE, train
    from ..config import PolicyConfig

    model_cfg, train_cfg, clip_cfg = read_config(args.config)
    if args.time_budget is not None:
        train_cfg = dataclasses.replace(train_cfg, time_budget_s=args.time_budget)
    if args.max_steps is not None:
        train_cfg = dataclasses.replace(train_cfg, max_steps=args.max_steps)
    if args.threads:
        torch.set_num_threads(args.threads)
    main = PartialState().is_main_process
    if not main:
        logging.getLogger().setLevel(logging.WARNING)  # one log, from rank 0
    paths = resolve_episode_paths(args.data)
    if not paths:
        raise ValueError(f"no episodes found in {[str(d) for d in args.data]}")
    train_paths, held_out = split_episodes(paths, held_out_fraction=args.held_out) if args.held_out > 0 else (paths, [])
    dataset = ActionClipDataset(train_paths, clip_cfg, in_memory=not args.stream)
    init = None
    if args.init_from is not None:
        from ..model_io import load_policy

        init, init_policy = load_policy(args.init_from, runtime="eager")  # trained as torch modules
        check_initial_data(init_policy, clip_cfg, dataset, args.init_from)
    if model_cfg.use_instruction and not model_cfg.instruction_vocab and init is not None:
        # the vocabulary indexes the embedding: keep the one the weights were trained with
        model_cfg = dataclasses.replace(model_cfg, instruction_vocab=init.model_cfg.instruction_vocab)
    elif model_cfg.use_instruction and not model_cfg.instruction_vocab:
        from ..model.conditioning import build_vocab

        vocab = build_vocab([e.instruction for e in dataset.episodes])
        model_cfg = dataclasses.replace(model_cfg, instruction_vocab=vocab)
        logger.info("instruction vocabulary from the training data: %s", " ".join(model_cfg.instruction_vocab))
    if init is not None:
        init = initial_pipeline(init, args.init_from, model_cfg, len(dataset.view_names))
        if model_cfg.use_instruction:
            from ..model.conditioning import instruction_words

            known = set(model_cfg.instruction_vocab)
            unknown = sorted({e.instruction for e in dataset.episodes
                              if not known.intersection(instruction_words(e.instruction))})
            if unknown:
                raise ValueError(f"--init-from {args.init_from}: the instruction(s) {unknown} have none of the words "
                                 f"the model was trained on ({' '.join(model_cfg.instruction_vocab)})")
    logger.info("training on %d clips from %d episodes (%d held out)", len(dataset), len(train_paths), len(held_out))
    clip_record = {**dataclasses.asdict(clip_cfg), "views": list(dataset.view_names),
                   "train_episodes": len(train_paths), "held_out_episodes": [str(p) for p in held_out]}
    control_dt = {round(float(e.control_dt), 6) for e in dataset.episodes}
    if len(control_dt) != 1:
        raise ValueError(f"the training episodes were recorded at different control periods {sorted(control_dt)} s")
    policy_cfg = PolicyConfig(clip=clip_record, control_dt_s=control_dt.pop())
    if init is not None:  # a fine-tune samples as the model it started from (its steps were chosen by a table)
        policy_cfg.num_inference_steps = init_policy.num_inference_steps
    if main:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / POLICY_CONFIG_FILE).write_text(json.dumps(policy_cfg.to_dict(), indent=2))  # for checkpoints
    result = train(model_cfg if init is None else init, dataset, train_cfg, args.out, policy_config=policy_cfg)
    final = args.out / FINAL_DIR
    if main:
        print(f"trained {result.steps} steps in {result.elapsed_s / 60:.1f} min, final loss {result.final_loss:.4f}; "
              f"model in {final}, loss curve {args.out / 'loss_curve.png'}")
    return 0
