"""The run's settings: one Config that mirrors train.py's flags and is what config.json saves,
its validation, and reading it back from a run folder. No TensorFlow here.
"""
import dataclasses
import json
from pathlib import Path

from avh import DEFAULT_EVERY
from avh.tags import CONFIG_FILE, METRICS_FILE
from avh_app.cli import UsageError
from model import LAYERS, PLOT_LAYERS

STRATEGIES = ("auto", "one", "mirrored", "multiworker")  # avh_app.distribute builds them
CHECKPOINT = "checkpoint.keras"
PARTIAL_CHECKPOINT = ".checkpoint-partial.keras"  # written first, renamed when complete

# Each optimizer's defaults. The same for every activation, so comparisons stay fair; chosen from
# the measurements in the README ("Choosing the optimizer").
OPTIMIZERS = {
    "adam": {"learning_rate": 1e-3},
    "sgd": {"learning_rate": 0.01, "momentum": 0.9},
}


@dataclasses.dataclass
class Config:
    dataset: str = "mnist"
    activation: str = "selu"
    data_dir: str | None = None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float | None = None    # None: the optimizer's default (OPTIMIZERS)
    momentum: float | None = None         # SGD only; None: OPTIMIZERS' default
    lr_schedule: str = "constant"
    clip_norm: float | None = None
    seed: int = 0
    norm: str = "auto"
    init: str = "auto"
    dropout: float = 0.1
    dropout_kind: str = "auto"
    logdir: str = "logs"
    run_name: str | None = None
    summary_every: int = DEFAULT_EVERY
    gradients: bool = True                # the backward signal beside the activations
    plot_layers: tuple[int, ...] = PLOT_LAYERS
    checkpoint_every: int = 500
    steps_per_execution: int = 1          # see README, Performance: chosen from measurements
    jit: bool = False
    mixed_precision: bool = False
    strategy: str = "auto"                # one of STRATEGIES; --resume may change it


def check_config(cfg):
    """UsageError naming the flag for a value no run can use."""
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "checkpoint_every": cfg.checkpoint_every}
    if cfg.optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if cfg.learning_rate is not None:
        positive["learning_rate"] = cfg.learning_rate
    if cfg.momentum is not None:
        if "momentum" not in OPTIMIZERS[cfg.optimizer]:
            raise UsageError(f"--momentum applies to --optimizer sgd, not {cfg.optimizer}")
        if not 0 <= cfg.momentum < 1:
            raise UsageError(f"--momentum must be in [0, 1), got {cfg.momentum}")
    if cfg.max_steps is not None:
        positive["max_steps"] = cfg.max_steps
    if cfg.clip_norm is not None:
        positive["clip_norm"] = cfg.clip_norm
    for name, value in positive.items():
        if not value > 0:  # also catches NaN
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if cfg.summary_every < 0:
        raise UsageError(f"--summary-every must be 0 (off) or positive, got {cfg.summary_every}")
    if not cfg.steps_per_execution > 0:
        raise UsageError(f"--steps-per-execution must be positive, got {cfg.steps_per_execution}")
    # Callbacks see only the ends of executions: summaries and checkpoints must fall there.
    for name in ("summary_every", "checkpoint_every"):
        every = getattr(cfg, name)
        if every % cfg.steps_per_execution:
            raise UsageError(f"--{name.replace('_', '-')} {every} is not a multiple of "
                             f"--steps-per-execution {cfg.steps_per_execution}; choose "
                             f"cadences that are multiples of it (or a smaller N)")
    if not 0 <= cfg.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {cfg.dropout}")
    bad = [k for k in cfg.plot_layers if not 1 <= k <= len(LAYERS)]
    if bad:
        raise UsageError(f"--plot-layers takes layer numbers 1-{len(LAYERS)}, got {bad[0]}")
    if cfg.run_name is not None:
        name = Path(cfg.run_name)
        if not cfg.run_name.strip() or name.is_absolute() or ".." in name.parts:
            raise UsageError(f"--run-name must be a relative folder name inside --logdir, got {cfg.run_name!r}")


def load_config(run_dir):
    """The Config saved in a run folder, or UsageError if the folder is not a finished-or-not run."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
        fields = {f.name for f in dataclasses.fields(Config)}
        cfg = Config(**{k: v for k, v in saved.items() if k in fields})
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise UsageError(f"--resume {run_dir}: not a run folder of this app (cannot read {path}: {err})")
    cfg.plot_layers = tuple(cfg.plot_layers)
    if (run_dir / METRICS_FILE).exists():
        raise UsageError(f"--resume {run_dir}: this run already finished (see its {METRICS_FILE})")
    if not (run_dir / CHECKPOINT).exists():
        raise UsageError(f"--resume {run_dir}: no checkpoint yet, the run stopped before its first "
                         f"one; start a new run instead")
    return cfg


def optimizer_settings(cfg):
    """{learning_rate, and momentum for SGD}: the run's values, defaults filled in."""
    settings = dict(OPTIMIZERS[cfg.optimizer])
    if cfg.learning_rate is not None:
        settings["learning_rate"] = cfg.learning_rate
    if cfg.momentum is not None:
        settings["momentum"] = cfg.momentum
    return settings
