"""Typed, self-validating configurations of the video-action model and its training.

``ModelConfig`` describes the network and its objective (it is saved inside every
pipeline checkpoint); ``TrainConfig`` describes one training run. Both load from
YAML (``from_yaml``) and reject bad values in ``__post_init__`` with a
``ValueError`` that names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

DENOISER_TYPES = ("unet2d", "wan")
PREDICTION_TYPES = ("sample", "velocity")
MODES = ("policy", "world_model", "label", "video")
ACTION_OUTPUTS = ("images", "head")
#: the denoising step whose features the gripper read-out reads (``ModelConfig.gripper_readout_at``)
READOUT_STEPS = ("last_step", "first_step")
#: bf16 only: the network's own autocast is bf16 at inference, and fp16 would need a gradient scaler
MIXED_PRECISIONS = ("no", "bf16")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _from_mapping(cls, data: dict[str, Any] | None, where: str):
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with the list of known ones."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**data)


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (a missing file or another top level is refused, naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


@dataclasses.dataclass
class WanConfig:
    """The large configuration: a Wan-family video transformer on Wan VAE latents.

    With ``pretrained`` set, the transformer and VAE are loaded from the local
    diffusers folder ``pretrained/{transformer,vae}`` (no downloads) and the
    size fields below are ignored; without it a randomly initialised miniature
    of this size is built (for tests and CPU smoke runs).
    """

    pretrained: str | None = None  #: local diffusers Wan folder with transformer/ and vae/ subfolders
    torch_dtype: str = "float32"  #: dtype the pretrained transformer is loaded in: float32 | bfloat16 | float16
    num_layers: int = 2
    num_attention_heads: int = 2
    attention_head_dim: int = 16
    ffn_dim: int = 64
    text_dim: int = 16  #: width of the (constant, zero) text-conditioning sequence
    freq_dim: int = 32
    patch_size: tuple[int, int, int] = (1, 2, 2)
    vae_base_dim: int = 8
    vae_z_dim: int = 4
    vae_num_res_blocks: int = 1

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)
        _require(len(self.patch_size) == 3 and all(p >= 1 for p in self.patch_size),
                 f"wan.patch_size must be three positive ints (t, h, w), got {self.patch_size}")
        _require(self.patch_size[0] == 1, f"wan.patch_size[0] (time) must be 1, got {self.patch_size[0]}")
        _require(self.torch_dtype in ("float32", "bfloat16", "float16"),
                 f"wan.torch_dtype must be one of ['float32', 'bfloat16', 'float16'], got {self.torch_dtype!r}")
        for name in ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "text_dim",
                     "freq_dim", "vae_base_dim", "vae_z_dim", "vae_num_res_blocks"):
            _require(int(getattr(self, name)) >= 1, f"wan.{name} must be >= 1, got {getattr(self, name)}")
        _require(self.attention_head_dim % 2 == 0 and self.attention_head_dim >= 6,
                 f"wan.attention_head_dim must be even and >= 6 (3-axis rotary embedding), "
                 f"got {self.attention_head_dim}")


@dataclasses.dataclass
class ModelConfig:
    """Network, conditioning and objective of the joint video + action-image model.

    Image tensors are ``[0, 1]`` outside the model; the pipeline maps them to
    ``(x - input_mean) / input_std`` before the network (the network never
    normalises).
    """

    denoiser_type: str = "unet2d"  #: "unet2d" (tiny, pixel space) or "wan" (large, VAE latents)
    image_size: int = 64  #: square image side in pixels (H = W), the same for every view
    num_future: int = 4  #: F future keyframes generated per view (RGB and action image each)
    use_plucker: bool = True  #: feed each view's Plücker ray map (6 channels) as camera conditioning
    #: feed the current pose expressed in each view's camera frame (10 constant channels: position,
    #: two rotation axes, gripper): tells every view the depth of the gripper it cannot see per pixel.
    use_state: bool = True
    #: follow a language instruction: its words (multi-hot over ``instruction_vocab``) are constant
    #: input channels. Without it a scene with several candidate targets is ambiguous.
    use_instruction: bool = False
    #: the words the model knows (filled by ``action-images train`` from the training instructions).
    instruction_vocab: tuple[str, ...] = ()
    #: colour words and the RGB (0..1) of the objects they name in this cell. With ``use_instruction``
    #: each view gets a grounding map: per pixel, how well its hue matches the colours the instruction
    #: names. A tiny model trained for an hour cannot learn to bind a word to a 2-pixel object by itself
    #: (tried: it ignored the colour word); a large pretrained video model would bring this grounding.
    instruction_colours: dict[str, tuple[float, float, float]] = dataclasses.field(default_factory=dict)
    #: one grounding map per role instead of one for all named colours: map 1 holds the first colour
    #: the instruction names (what to reach or move), map 2 the second (where to put it). With a single
    #: map "put the red cube on the green square" lights both objects alike, and which one to grasp
    #: has to be learnt from the task; with roles the instruction says it.
    grounding_roles: bool = False
    #: how the future poses come out: "images" (the method: drawn as action images, decoded by
    #: triangulation) or "head" (the paper's ablation: regressed by a small head on the UNet's
    #: bottleneck features; the action-image stream is never generated, only the video).
    action_output: str = "images"
    #: action images only: read each decoded keyframe's gripper with a small learned classifier
    #: (``model.gripper_readout``) on the UNet's bottleneck features of all views and the current pose,
    #: instead of from the drawn B-channel background. Poses still come from the codec's decode of the
    #: action images, and the images still draw the gripper (issue 17: the drawn background sat half-way
    #: at the keyframes that open or close, while a head on the same features read them right).
    gripper_readout: bool = False
    #: which denoising step's features the read-out reads. "last_step": the step that produced the
    #: decoded images; trained at every noise level, it learns to copy the gripper from the nearly clean
    #: action images in its input (the B background), and at inference copies the model's own drawing.
    #: "first_step": pure noise in the generated streams, so only the observation, the pose and the
    #: instruction can tell it (as for the action head); trained on rows drawn at sigma = 1.
    gripper_readout_at: str = "last_step"
    #: "first_step" read-outs and distillation (``train.distill_from``): share of training rows drawn at pure
    #: noise (sigma = 1), the rows the read-out's loss is taken on (1.0 when only the read-out trains,
    #: ``train.freeze_denoiser``) and the rows that learn the teacher's samples
    readout_pure_noise_share: float = 0.25
    #: unet2d only: one self-attention layer over all views' bottleneck tokens (``model.view_mixer``), so
    #: the views draw one pose instead of each its own guess (issue 17: the decoder dropped a disagreeing
    #: view in 8 of 10 carrying predictions of a held-out place episode). Starts as the identity.
    view_mixer: bool = False
    prediction_type: str = "sample"  #: what the network outputs: clean "sample" (x0) or flow "velocity" (noise - x0)
    #: UNet only: predict the future as the current frame / action image plus a learned change
    #: (the output layer starts at zero, so an untrained model already predicts "no motion").
    residual_to_current: bool = True
    # UNet2D (denoiser_type = "unet2d")
    block_out_channels: tuple[int, ...] = (16, 32, 64, 128)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention_levels: int = 1  #: how many of the lowest-resolution levels use self-attention
    # Wan (denoiser_type = "wan")
    wan: WanConfig = dataclasses.field(default_factory=WanConfig)
    # Pre-processing statistics, saved with the model.
    input_mean: float = 0.5
    input_std: float = 0.5
    # Action-image codec used to draw the training targets (must match the dataset).
    codec_sigma_frac: float = 0.05
    codec_axis_length: float = 0.1
    codec_open_background: float = 0.25
    # Objective.
    loss_rgb_weight: float = 1.0
    loss_action_weight: float = 4.0
    loss_blob_weight: float = 10.0  #: extra per-pixel weight on action-image blobs (x (1 + w * blob intensity))
    loss_gripper_weight: float = 1.0  #: weight of the gripper read-out's cross-entropy (``gripper_readout``)
    #: extra weight of the read-out's keyframes that open or close the gripper (their target differs from
    #: the current state's), which are few beside the keyframes that keep it
    loss_gripper_change_weight: float = 1.0
    sigma_logit_mean: float = 0.5  #: training noise level sigma = sigmoid(N(mean, std)); > 0 is noise-heavy
    sigma_logit_std: float = 1.0
    min_sigma: float = 0.02  #: clamp of sigma when converting a clean-sample prediction to velocity
    inference_bf16: bool = True  #: bf16 autocast for the denoiser at inference (CPU and CUDA)

    def __post_init__(self) -> None:
        if isinstance(self.wan, dict):
            self.wan = _from_mapping(WanConfig, self.wan, "model.wan")
        _require(isinstance(self.wan, WanConfig), f"wan must be a mapping or WanConfig, got {type(self.wan).__name__}")
        _require(self.denoiser_type in DENOISER_TYPES,
                 f"denoiser_type must be one of {list(DENOISER_TYPES)}, got {self.denoiser_type!r}")
        _require(self.action_output in ACTION_OUTPUTS,
                 f"action_output must be one of {list(ACTION_OUTPUTS)}, got {self.action_output!r}")
        _require(self.action_output == "images" or self.denoiser_type == "unet2d",
                 "action_output 'head' reads the UNet's mid block: it needs denoiser_type 'unet2d'")
        _require(not self.gripper_readout or (self.action_output == "images" and self.denoiser_type == "unet2d"),
                 "gripper_readout reads the UNet's mid block at the decoded action images: it needs "
                 "action_output 'images' and denoiser_type 'unet2d'")
        _require(not self.view_mixer or self.denoiser_type == "unet2d",
                 "view_mixer mixes the UNet's per-view bottlenecks: it needs denoiser_type 'unet2d' (the wan "
                 "transformer already attends over all views)")
        _require(self.gripper_readout_at in READOUT_STEPS,
                 f"gripper_readout_at must be one of {list(READOUT_STEPS)}, got {self.gripper_readout_at!r}")
        _require(0.0 < float(self.readout_pure_noise_share) <= 1.0,
                 f"readout_pure_noise_share must be in (0, 1], got {self.readout_pure_noise_share}")
        _require(self.prediction_type in PREDICTION_TYPES,
                 f"prediction_type must be one of {list(PREDICTION_TYPES)}, got {self.prediction_type!r}")
        _require(int(self.image_size) >= 16, f"image_size must be >= 16 pixels, got {self.image_size}")
        _require(int(self.num_future) >= 1, f"num_future must be >= 1, got {self.num_future}")
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.instruction_vocab = tuple(str(w) for w in self.instruction_vocab)
        self.instruction_colours = {str(k): tuple(float(c) for c in v) for k, v in dict(self.instruction_colours).items()}
        _require(all(len(v) == 3 and all(0.0 <= c <= 1.0 for c in v) for v in self.instruction_colours.values()),
                 f"instruction_colours must map words to 3 RGB values in [0, 1], got {self.instruction_colours}")
        _require(all(re.fullmatch(r"[a-z0-9]+", w) for w in self.instruction_vocab)
                 and len(set(self.instruction_vocab)) == len(self.instruction_vocab),
                 f"instruction_vocab must be unique lower-case words, got {list(self.instruction_vocab)}")
        _require(len(self.block_out_channels) >= 2, "block_out_channels needs at least 2 levels")
        _require(all(c % self.norm_num_groups == 0 for c in self.block_out_channels),
                 f"every block_out_channels entry must be divisible by norm_num_groups={self.norm_num_groups}, "
                 f"got {self.block_out_channels}")
        _require(1 <= self.layers_per_block <= 4, f"layers_per_block must be in [1, 4], got {self.layers_per_block}")
        _require(0 <= self.attention_levels <= len(self.block_out_channels),
                 f"attention_levels must be in [0, {len(self.block_out_channels)}], got {self.attention_levels}")
        if self.denoiser_type == "unet2d":
            down = 2 ** (len(self.block_out_channels) - 1)
            _require(self.image_size % down == 0,
                     f"image_size {self.image_size} must be divisible by 2**(levels-1) = {down} for the UNet")
        else:
            _require(self.num_future % 4 == 0,
                     f"the Wan VAE compresses time 4x: num_future must be a multiple of 4 (1 + 4k frames "
                     f"per clip with the conditioning frame), got {self.num_future}")
        _require(not (self.denoiser_type == "unet2d" and self.residual_to_current
                      and self.prediction_type != "sample"),
                 "residual_to_current needs prediction_type='sample' (it adds the current frame to a clean-sample "
                 "prediction); set residual_to_current: false for velocity prediction")
        _require(self.input_std > 0, f"input_std must be positive, got {self.input_std}")
        _require(0.0 < self.codec_sigma_frac < 0.5,
                 f"codec_sigma_frac must be in (0, 0.5), got {self.codec_sigma_frac}")
        _require(self.codec_axis_length > 0, f"codec_axis_length must be positive, got {self.codec_axis_length}")
        _require(0.0 < self.codec_open_background < 1.0,
                 f"codec_open_background must be in (0, 1), got {self.codec_open_background}")
        _require(self.loss_gripper_change_weight >= 1.0,
                 f"loss_gripper_change_weight must be >= 1 (1 = every keyframe alike), got "
                 f"{self.loss_gripper_change_weight}")
        for name in ("loss_rgb_weight", "loss_action_weight", "loss_blob_weight", "loss_gripper_weight"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _require(self.loss_rgb_weight + self.loss_action_weight > 0, "at least one stream loss weight must be > 0")
        _require(self.sigma_logit_std > 0, f"sigma_logit_std must be positive, got {self.sigma_logit_std}")
        _require(0.0 < self.min_sigma < 0.5, f"min_sigma must be in (0, 0.5), got {self.min_sigma}")

    @property
    def num_instruction_channels(self) -> int:
        """Constant input channels of the instruction (0 without ``use_instruction``)."""
        return len(self.instruction_vocab) if self.use_instruction else 0

    @property
    def num_grounding_maps(self) -> int:
        """Per-pixel instruction grounding channels (with ``use_instruction`` and colours: 1, or 2 with
        ``grounding_roles``; else 0)."""
        if not (self.use_instruction and self.instruction_colours):
            return 0
        return 2 if self.grounding_roles else 1

    # ------------------------------------------------------------------ io
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ModelConfig":
        return _from_mapping(cls, data, "model config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ModelConfig":
        """Load from a YAML file holding either the fields or a ``model:`` section."""
        data = load_yaml_mapping(path)
        return cls.from_dict(data["model"] if "model" in data else data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["block_out_channels"] = list(self.block_out_channels)
        d["instruction_vocab"] = list(self.instruction_vocab)
        d["instruction_colours"] = {k: list(v) for k, v in self.instruction_colours.items()}
        d["wan"]["patch_size"] = list(self.wan.patch_size)
        return d


@dataclasses.dataclass
class TrainConfig:
    """One training run. Stops at ``max_steps`` or ``time_budget_s``, whichever comes first."""

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    #: cosine decay of the learning rate over the run (times the warm-up's ramp), down to ``learning_rate`` x
    #: this at its end; the run's progress is the larger of step / max_steps and training time / time_budget_s,
    #: so a run ended by its time budget decays too (1 = constant, as before)
    lr_final_ratio: float = 1.0
    batch_size: int = 8  #: scenes per step (each with V views)
    max_steps: int = 10_000
    time_budget_s: float | None = None  #: wall-clock budget of this run in seconds (training time, summed over resumes)
    #: Accelerate's mixed precision for the network: "bf16" (autocast; ≈20 % faster on CPU) or "no"
    mixed_precision: str = "bf16"
    #: micro-batches per optimiser step (Accelerate's gradient accumulation); ``batch_size`` stays the
    #: scenes per optimiser step, so each micro-batch is ``batch_size / (processes x this)``
    gradient_accumulation_steps: int = 1
    #: recompute activations in the backward pass (denoisers that support it: Wan, UNet2D) to fit a
    #: large backbone's batch in memory
    gradient_checkpointing: bool = False
    grad_clip: float = 1.0  #: max gradient norm; 0 disables clipping
    ema_decay: float = 0.0  #: exponential moving average of the weights; 0 disables it
    #: train only the action head / gripper read-out on a trained denoiser, whose weights stay as they are
    #: (e.g. a read-out added with ``train --init-from``); needs ema_decay 0
    freeze_denoiser: bool = False
    checkpoint_every: int = 200  #: steps between checkpoints
    keep_checkpoints: int = 2  #: most recent checkpoints kept on disk
    log_every: int = 10  #: steps between log lines / loss-curve points
    seed: int = 0
    num_workers: int = 0  #: DataLoader workers (0 = in the training process)
    #: draw clips so that every task has the same share of the batches on average, instead of a
    #: share in proportion to its clips (long tasks such as place or stack have twice reach's clips)
    balance_tasks: bool = False
    #: instead of equal shares: each task's share of the drawn clips, e.g. ``{reach_target: 1, pick_cube: 1,
    #: place_cube: 2, stack_cubes: 2}`` (normalised; every task of the data must be named). For a fine-tune
    #: that spends its steps where the skill is missing; implies balance_tasks
    task_shares: dict[str, float] | None = None
    #: draw clips whose future keyframes open or close the gripper this many times as often as the others
    #: (1 = no change). Measured: 31-32 % of place/stack clips already hold an event (4 keyframes x
    #: stride 2 look 8 steps ahead), so this is a weak lever there (docs/multitask.md)
    gripper_event_weight: float = 1.0
    mode_probs: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"policy": 0.5, "world_model": 0.2, "label": 0.2, "video": 0.1}
    )  #: probability of training each mode (which streams are given / dropped)
    #: few-step distillation (``model.distillation``): a saved pipeline folder whose samples, drawn in
    #: ``distill_steps`` steps from the noise of the rows at pure noise (``readout_pure_noise_share``), those
    #: rows learn instead of the recorded future. Usually the model the fine-tune starts from (``--init-from``)
    distill_from: str | None = None
    distill_steps: int = 2  #: the teacher's denoising steps
    progress: bool = True  #: tqdm progress bar

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _require(0.0 <= self.lr_final_ratio <= 1.0, f"lr_final_ratio must be in [0, 1], got {self.lr_final_ratio}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        _require(self.time_budget_s is None or self.time_budget_s > 0,
                 f"time_budget_s must be positive or null, got {self.time_budget_s}")
        _require(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        _require(self.mixed_precision in MIXED_PRECISIONS,
                 f"mixed_precision must be one of {list(MIXED_PRECISIONS)}, got {self.mixed_precision!r}")
        _require(self.gradient_accumulation_steps >= 1,
                 f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")
        _require(self.batch_size % self.gradient_accumulation_steps == 0,
                 f"batch_size {self.batch_size} must be divisible by gradient_accumulation_steps "
                 f"{self.gradient_accumulation_steps}")
        _require(0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        _require(not (self.freeze_denoiser and self.ema_decay > 0),
                 "freeze_denoiser trains only the heads: set ema_decay: 0 (an average of part of the model "
                 "would not match the exported pipeline)")
        _require(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        _require(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        _require(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        _require(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        _require(self.gripper_event_weight >= 1.0,
                 f"gripper_event_weight must be >= 1 (1 = plain sampling), got {self.gripper_event_weight}")
        if self.task_shares is not None:
            self.task_shares = {str(k): float(v) for k, v in dict(self.task_shares).items()}
            _require(bool(self.task_shares) and all(v > 0 for v in self.task_shares.values()),
                     f"task_shares must name tasks with positive shares, got {self.task_shares}")
        _require(1 <= self.distill_steps <= 100, f"distill_steps must be in [1, 100], got {self.distill_steps}")
        self.mode_probs = {str(k): float(v) for k, v in dict(self.mode_probs).items()}
        unknown = sorted(set(self.mode_probs) - set(MODES))
        _require(not unknown, f"mode_probs: unknown mode(s) {unknown}; modes are {list(MODES)}")
        _require(all(v >= 0 for v in self.mode_probs.values()) and sum(self.mode_probs.values()) > 0,
                 f"mode_probs must be >= 0 with a positive sum, got {self.mode_probs}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TrainConfig":
        return _from_mapping(cls, data, "train config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Load from a YAML file holding either the fields or a ``train:`` section."""
        data = load_yaml_mapping(path)
        return cls.from_dict(data["train"] if "train" in data else data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_configs(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """Read one YAML file with ``model:`` and ``train:`` sections (either may be omitted)."""
    data = load_yaml_mapping(path)
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level section(s) {unknown}; expected 'model' and/or 'train'")
    return ModelConfig.from_dict(data.get("model")), TrainConfig.from_dict(data.get("train"))
