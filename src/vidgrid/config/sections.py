"""The run configuration's sections: typed dataclasses whose defaults are the recipe defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass
class DataConfig:
    """Where the videos are and how clips are sampled from them."""

    train_list: str = ""
    """Training annotations: a Kinetics-style list, SSv2 JSON, Charades CSV, or a folder per class."""
    val_list: str = ""
    """Validation annotations, same formats as ``train_list``."""
    root: str = ""
    """Folder that relative video paths are resolved against (default: each list's folder)."""
    format: str = "auto"
    """Annotation format: a registered one (``vidgrid.data.formats``), checked where the lists are read;
    ``auto`` lets the formats' detectors decide from the file type, extension and CSV header."""
    classes: str = ""
    """Optional ``classes.txt`` (one class name per line); default: ``classes.txt`` beside the list."""
    boxes: str = ""
    """Optional track file of the main object's boxes, CSV ``path,frame,x1,y1,x2,y2`` (source pixels,
    linearly interpolated between annotated frames); a list line may instead end with ``x1 y1 x2 y2``."""
    label_map: str = ""
    """AVA: the ``.pbtxt`` label map (``item { name: "..." id: N }``); default ``label_map.pbtxt`` beside the list."""
    train_proposals: str = ""
    """AVA: person proposals of the training keyframes (CSV, box columns plus a score); empty: annotated boxes only."""
    val_proposals: str = ""
    """AVA: person proposals of the validation keyframes, the boxes that are tested; empty: the annotated boxes."""
    exclusions: str = ""
    """AVA: optional CSV ``video_id,timestamp_s`` of keyframes left out of training and evaluation."""
    frames: int = 16
    """Base clip length T in frames (the multigrid schedule scales it)."""
    sampling_rate: int = 4
    """Base temporal stride τ in source frames."""
    crop: int = 224
    """Base training crop S (the multigrid schedule scales it)."""
    temporal_sampling: Literal["stride", "segment"] = "stride"
    """``stride``: random start and stride (Kinetics); ``segment``: one frame per equal segment (SSv2)."""
    spatial_sampling: Literal["rescale_crop", "resized_crop"] = "rescale_crop"
    """``rescale_crop``: short-side jitter then a random crop; ``resized_crop``: RandomResizedCrop."""
    min_short: int = 256
    """Smallest short side of the training jitter at crop S (both ends scaled by s/S for a crop s < S)."""
    max_short: int = 320
    """Largest short side of the training jitter at crop S."""
    flip: bool | None = None
    """Random horizontal flip; ``None`` = on unless the dataset's ``meta.json`` says it is flip-sensitive."""
    rand_augment: bool = False
    """RandAugment, one op sequence per clip applied to all its frames."""
    rand_augment_ops: int = 2
    """RandAugment: number of ops n."""
    rand_augment_magnitude: int = 9
    """RandAugment: magnitude m (0-10)."""
    mean: tuple[float, float, float] = KINETICS_MEAN
    """Per-channel mean of pixels in [0, 1], subtracted on the device."""
    std: tuple[float, float, float] = KINETICS_STD
    """Per-channel std of pixels in [0, 1], divided on the device."""
    workers: int = 4
    """DataLoader worker processes per training process."""
    cache_gb: float = 0.0
    """Decoded training videos kept in memory, in GB per loader process, shared out among the
    ``datasets`` (0 = off): each video kept is decoded once instead of once per clip
    (:mod:`vidgrid.data.frame_cache`)."""
    max_retries: int = 10
    """How many replacement samples are tried when a video cannot be decoded."""
    loader_timeout_s: float = 600.0
    """Seconds training may wait for one batch before a stalled read or decode is an error (0 = wait forever)."""


@dataclass
class TaskConfig:
    """What is learned (see ``vidgrid.tasks.list_tasks()``)."""

    name: str = "classification"
    """Registered task: ``classification`` (one class per video; multi-label when the annotations
    are, as Charades' are), ``multi_label``, ``sibling`` (classes and the main object's box) or
    ``multitrain`` (a head per entry of ``datasets``)."""
    cls_weight: float = 1.0
    """Sibling task: weight of the classification loss (fixed weighting)."""
    box_weight: float = 2.0
    """Sibling task: weight of the box loss, GIoU loss + L1 on crop-normalised coordinates (fixed
    weighting); 2, DETR's GIoU weight (Carion et al., ECCV 2020, §4): at 1 the classifier takes the
    shared backbone and the box head lags a box-only model by 0.04-0.09 IoU."""
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"
    """Sibling task: the weights above, or learned uncertainty weighting (Kendall et al., CVPR 2018)."""
    cls_grad_scale: float = 1.0
    """Sibling task: scale of the classification head's gradient into the backbone (0 detaches it)."""
    box_grad_scale: float = 1.0
    """Sibling task: scale of the box head's gradient into the backbone (0 detaches it)."""
    patience: int = 0
    """Sibling task: evaluations without improvement after which a head is reset to its best and frozen (0 = off)."""


@dataclass
class ModelConfig:
    """Which network to build (see ``vidgrid.models.list_models()``)."""

    name: str = "x3d_s"
    """Registered model name."""
    num_classes: int = 0
    """Classifier size; 0 = the number of classes in the annotations."""
    dropout: float | None = None
    """Dropout before the classifier; ``None`` = the model's own default."""
    drop_path: float | None = None
    """Stochastic depth rate; ``None`` = the model's own default."""
    options: dict[str, Any] = field(default_factory=dict)
    """Further keyword overrides for the model builder (e.g. ``{width_factor: 1.0}``)."""
    pretrained: str = ""
    """A vidgrid checkpoint to initialise the weights from (classifier re-initialised if sizes differ)."""
    channels_last: bool = False
    """Use the channels_last_3d memory format."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""


@dataclass
class MultigridConfig:
    """Multigrid training (Wu et al., CVPR 2020, §3.2)."""

    enabled: bool = False
    """Train on the multigrid schedule instead of one fixed shape."""
    long_cycle: bool = True
    """Cycle through the long-cycle base shapes within each LR stage."""
    short_cycle: bool = True
    """Cycle through smaller crops iteration by iteration."""
    long_cycle_factors: list[tuple[float, float]] = field(
        default_factory=lambda: [(0.25, 1 / math.sqrt(2)), (0.5, 1 / math.sqrt(2)), (0.5, 1.0), (1.0, 1.0)]
    )
    """(time, space) factors of the long-cycle shapes relative to the base T and S."""
    short_cycle_factors: list[float] = field(default_factory=lambda: [0.5, 1 / math.sqrt(2)])
    """Spatial factors of the short-cycle shapes relative to the base S (then the long-cycle shape)."""
    epoch_factor: float = 1.5
    """Total epochs relative to the baseline schedule."""
    min_frames: int = 3
    """Fewest frames of a long-cycle shape: a coarser one trades frames for crop at the same cost
    (Eq. 1 batch unchanged). 3 = the temporal kernel of the 3-D convolutions: fewer frames leave
    every temporal filter reading zero padding (T/4 = 2 frames of an 8-frame base); 1 = the paper's
    shapes as they are."""
    max_batch_factor: float = 0.0
    """Largest batch of a step relative to ``train.batch_size`` (0 = Eq. 1's, the paper's): each
    long-cycle shape keeps its epochs, cut into more, smaller steps at a linearly scaled LR, for runs
    too short for Eq. 1's fewer iterations (``configs/demo.yaml`` says when)."""
    bn_base_size: int = 8
    """Clips per BatchNorm group at the long-cycle batch (sub-batch BN, multigrid paper §3.2 "Batch Normalization": 8). At
    tiny crops the coarse clips leave the deepest layers a handful of positions per clip, so groups
    of 8 give noisy statistics; a group as large as the batch keeps as many values per channel at
    every shape as the baseline's."""
    precise_bn_batches: int = 200
    """Before each validation, replace the BatchNorm running statistics by their average over this
    many training batches at the base shape (at most one pass over the data; 0 = off): the running
    statistics of a multigrid run mix every shape of its last epochs (PySlowFast:
    ``BN.USE_PRECISE_STATS``, 200 batches)."""


@dataclass
class OptimConfig:
    """Optimizer and its hyper-parameters."""

    name: Literal["sgd", "adamw"] = "sgd"
    """Optimizer."""
    lr: float = 0.1
    """Base learning rate at ``reference_batch``."""
    reference_batch: int = 0
    """Batch size that ``lr`` is given for (linear scaling rule); 0 = ``train.batch_size``."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    """Nesterov momentum for SGD."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    weight_decay: float = 1e-4
    """Weight decay (never applied to norms, biases and position embeddings)."""
    backbone_lr_mult: float = 1.0
    """LR multiplier of the backbone when fine-tuning a pretrained model (the practitioner's notes: 0.1)."""
    clip_grad_norm: float = 0.0
    """Clip the gradient norm to this value; 0 = off."""


@dataclass
class ScheduleConfig:
    """Learning-rate policy over epochs (the multigrid LR multipliers come on top)."""

    policy: Literal["step", "cosine"] = "cosine"
    """``step``: relative LRs per stage; ``cosine``: half-period cosine to ``cosine_end``."""
    steps: list[int] = field(default_factory=lambda: [0])
    """Stage start epochs for ``step`` (also the multigrid long-cycle stages), starting with 0."""
    lrs: list[float] = field(default_factory=lambda: [1.0])
    """Relative LR of each stage for ``step``."""
    cosine_end: float = 0.01
    """Final LR of the cosine as a fraction of the base LR."""
    warmup_epochs: float = 0.0
    """Linear warm-up length in baseline epochs; multigrid warms up over the same share of its
    iterations."""
    warmup_start_factor: float = 0.01
    """Warm-up starts at this fraction of the base LR."""


@dataclass
class TrainConfig:
    """The training run."""

    epochs: int = 10
    """Baseline epochs (multigrid runs ``multigrid.epoch_factor`` × as many)."""
    batch_size: int = 8
    """Global base batch B over all processes."""
    seed: int = 0
    """Seed of the data order, augmentation and initialisation."""
    deterministic: bool = False
    """Deterministic algorithms (CPU runs resume to bit-identical results)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; ``auto`` = CUDA when available."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Autocast precision (fp16 uses a grad scaler, CUDA only)."""
    mixup_alpha: float = 0.0
    """Mixup Beta(α, α); 0 = off (the practitioner's notes: 0.8)."""
    cutmix_alpha: float = 0.0
    """CutMix Beta(α, α); 0 = off (the practitioner's notes: 1.0)."""
    mix_switch_prob: float = 0.5
    """With both on, probability of CutMix instead of Mixup per batch."""
    label_smoothing: float = 0.0
    """Label smoothing of the (mixed) targets."""
    eval_every: int = 1
    """Validate every N epochs (and after the last one); 0 = only at the end."""
    checkpoint_every: int = 0
    """Also checkpoint every N iterations; 0 = only at epoch ends."""
    keep_checkpoints: int = 3
    """How many recent checkpoints to keep."""
    log_every: int = 10
    """Write a metrics line every N iterations."""
    loggers: list[Literal["tensorboard", "wandb"]] = field(default_factory=lambda: ["tensorboard"])
    """Where metrics go besides ``metrics.jsonl``: TensorBoard (``tb/``) and/or Weights & Biases
    (extra ``vidgrid[wandb]``; offline into ``wandb/`` unless ``WANDB_MODE`` or ``WANDB_API_KEY`` is set)."""


@dataclass
class EvalConfig:
    """Multi-view testing."""

    clips: int = 10
    """K uniformly spaced temporal clips per video."""
    crops: Literal[0, 1, 3] = 3
    """Spatial crops per clip: 1 (center), 3 (left/center/right, or top/center/bottom) or 0 (the whole
    frame at ``eval.short_side``, not square: detection)."""
    crop: int = 0
    """Test crop size; 0 = ``data.crop`` (X3D tests at a larger crop than it trains on)."""
    short_side: int = 0
    """Short side the video is resized to before cropping; 0 = the test crop."""
    batch_size: int = 8
    """Videos per evaluation batch."""


@dataclass
class DetectionConfig:
    """Spatio-temporal action detection on keyframes (X3D supplement §A.1)."""

    train_iou: float = 0.9
    """Training boxes: the annotated boxes plus the proposals overlapping one by IoU above this."""
    proposal_score: float = 0.8
    """Proposals at or below this detector score are never used (the test boxes are the others)."""


@dataclass
class ExpandConfig:
    """``vidgrid expand``: X3D's progressive expansion (X3D supplement, "Expansion details")."""

    start: str = "x2d"
    """Named point of the X3D γ table the search starts from (X2D: every γ = 1, one frame)."""
    start_gammas: dict[str, float] = field(default_factory=dict)
    """Factors replacing the start's (keys tau, t, s, w, b, d), e.g. ``{s: 0.5, w: 0.5}`` for a
    smaller search; γ_τ of a one-frame start defaults to the recipe's clip span (frames × sampling_rate)."""
    steps: int = 5
    """Expansion steps (``--steps``)."""
    axes: list[str] = field(default_factory=lambda: ["fast", "temporal", "spatial", "depth", "width", "bottleneck"])
    """Axes tried at each step (``--axes``)."""
    cost_ratio: float = 2.0
    """ĉ: each candidate's FLOPs target relative to the current model's."""
    bn_clips: int = 16
    """Clips per BatchNorm group of every candidate (``multigrid.bn_base_size``)."""
    batch_halving_step: int = 8
    """Candidates train at twice the recipe's batch before this step, at its batch from it on."""
    drop_connect_step: int = 11
    """From this step on, candidates train with drop-connect ``drop_connect``."""
    drop_connect: float = 0.1
    """Drop-connect (stochastic depth) rate of the regularisation expansion."""


@dataclass
class DatasetConfig:
    """One dataset of a multi-dataset run (MultiTrain supplement §2.1): its lists, its own clip
    sampling and its head's loss; frames and crop are ``data``'s (every dataset shares a step's shape)."""

    name: str = ""
    """Name of the dataset and its head (letters, digits, ``_`` and ``-``); keys its metrics."""
    train_list: str = ""
    """Training annotations (any format ``data.train_list`` takes)."""
    val_list: str = ""
    """Validation annotations."""
    root: str = ""
    """Folder relative video paths are resolved against (default: each list's folder)."""
    format: str = "auto"
    """Annotation format, as ``data.format``."""
    classes: str = ""
    """Optional ``classes.txt``, as ``data.classes``."""
    flip: bool | None = None
    """Random horizontal flip; ``None`` = on unless the dataset's ``meta.json`` says it is flip-sensitive."""
    temporal_sampling: Literal["stride", "segment"] = "stride"
    """``stride`` clips (Kinetics) or one frame per segment (SSv2), in training and testing."""
    sampling_rate: int = 0
    """Temporal stride τ of ``stride`` clips; 0 = ``data.sampling_rate``."""
    eval_clips: int = 0
    """Temporal test views; 0 = ``eval.clips``."""
    eval_crops: int = 0
    """Spatial test crops (1 or 3); 0 = ``eval.crops``."""
    loss: Literal["softmax", "sigmoid"] = "softmax"
    """Head loss and metric: softmax cross-entropy (top-1/top-5), or sigmoid BCE (mAP; multi-label lists need it)."""
    loss_weight: float = 1.0
    """Weight of this dataset's loss (with its projection loss) in the total."""
    sampling_weight: float = 1.0
    """Share of the dataset in an epoch: each video is drawn this many times per epoch on average."""


@dataclass
class MultiTrainConfig:
    """Multi-dataset training (MultiTrain, NeurIPS 2022, supplement §2.1): heads, informative and projection losses."""

    head: Literal["mlp", "linear"] = "mlp"
    """Each dataset's head: a 2-layer MLP (2048 hidden, GELU) or a linear layer."""
    hidden: int = 2048
    """Hidden width of the MLP heads and of the expander."""
    informative_weight: float = 0.1
    """Weight of the informative loss (variance + covariance terms) in the total."""
    variance_weight: float = 25.0
    """Weight of the variance hinge ``mean(relu(1 - sqrt(var_j + 1e-4)))``."""
    covariance_weight: float = 1.0
    """Weight of the covariance penalty ``sum of squared off-diagonal covariances / dim``."""
    projection_weight: float = 1.0
    """Weight of the cross-dataset projection loss, added to the target dataset's loss."""


@dataclass
class Config:
    """A complete run: recipe defaults plus overrides."""

    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    multigrid: MultigridConfig = field(default_factory=MultigridConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    expand: ExpandConfig = field(default_factory=ExpandConfig)
    datasets: list[DatasetConfig] = field(default_factory=list)
    """Several datasets trained at once (``task.name: multitrain``); empty: ``data``'s lists alone."""
    multitrain: MultiTrainConfig = field(default_factory=MultiTrainConfig)
