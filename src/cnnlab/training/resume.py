"""What a run may resume from: its checkpoint, if the settings and the machine agree.

A resumed run ends with the numbers of an uninterrupted one only if it goes on with the
same settings, on the same kind of device, in the same precision: ``--device auto`` on
a GPU machine after a start on a CPU (or bf16 after fp16) would continue with other
arithmetic and another random stream. Such a resume is refused unless it is asked for
(``allow_device_change``), and then it is logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cnnlab.config.identity import OUTPUT_ONLY
from cnnlab.config.schema import TrainConfig, config_dict, make_config
from cnnlab.errors import ConfigError
from cnnlab.evaluation.precision import Precision, precision_record
from cnnlab.training.checkpoint import Checkpoint, load_checkpoint

log = logging.getLogger(__name__)
ALLOW_FLAG = "--allow-device-change"


def previous_checkpoint(
    cfg: TrainConfig,
    ckpt_path: Path,
    resume: bool,
    precision: Precision,
    allow_device_change: bool = False,
) -> Checkpoint | None:
    """The checkpoint to resume from (None: start afresh), or a one-line refusal."""
    if not ckpt_path.exists():
        return None
    if not resume:
        raise ConfigError(
            f"{ckpt_path.parent} already holds a run; pass --resume to continue it or choose another --out"
        )
    previous = load_checkpoint(ckpt_path)
    # Both sides through validation: settings added since the checkpoint was written take
    # their defaults, and values compare in canonical form.
    before = config_dict(make_config(previous.config))
    # Defaults are not validated (augment's "" stays "" until a round trip makes it
    # "none"), so the current settings take the same round trip as the stored ones.
    now = config_dict(make_config(config_dict(cfg)))
    for key in OUTPUT_ONLY:  # what only adds files may be turned on or off mid-run
        before.pop(key, None)
        now.pop(key, None)
    changed = sorted(k for k in before if before[k] != now.get(k))
    if changed == ["epochs"] and cfg.shorter_runs_are_its_start:
        _check_longer(previous, cfg, ckpt_path.parent)
    elif changed == ["epochs"]:
        raise ConfigError(
            f"{ckpt_path.parent} holds a run of {before['epochs']} epochs; {_why_not_longer(cfg)}, "
            "so a run of another length is not this one continued: train it into another --out"
        )
    elif changed:
        raise ConfigError(
            f"{ckpt_path.parent} holds a run with different settings ({', '.join(changed)}); "
            "resume with the same settings or choose another --out"
        )
    _check_same_machine_kind(previous, ckpt_path.parent, precision, allow_device_change)
    return previous


def _why_not_longer(cfg: TrainConfig) -> str:
    if cfg.schedule.depends_on_length:
        return f"its {cfg.schedule.name} learning-rate schedule depends on the run's length"
    return "early stopping or a step or batch limit may end it at another point"


def _check_longer(previous: Checkpoint, cfg: TrainConfig, run_dir: Path) -> None:
    """Only the length differs, and the schedule does not depend on it: a run of more epochs
    goes on from this one's checkpoint exactly as if it had been asked for from the start.
    One of fewer epochs than the checkpoint holds cannot be had from it."""
    if previous.epoch > cfg.epochs:
        raise ConfigError(
            f"{run_dir} holds {previous.epoch} epochs, more than the {cfg.epochs} asked; "
            "train that run into another --out"
        )


def _check_same_machine_kind(
    previous: Checkpoint, run_dir: Path, precision: Precision, allow: bool
) -> None:
    # Checkpoints written before the resolved precision was recorded carry none: nothing
    # to compare, as before.
    if not previous.trained_on:
        return
    then = str(previous.trained_on.get("label", ""))
    now = str(precision_record(precision)["label"])
    if then == now:
        return
    if not allow:
        raise ConfigError(
            f"{run_dir} was trained as {then} and would go on here as {now} (other arithmetic "
            f"and random stream); resume it on a machine like the first, or pass {ALLOW_FLAG} "
            "to continue anyway"
        )
    log.warning(
        "%s: trained as %s up to epoch %d, continuing as %s (%s): its numbers will differ "
        "from an uninterrupted run's",
        run_dir,
        then,
        previous.epoch,
        now,
        ALLOW_FLAG,
    )


def no_deterministic_kernel(torch_message: str) -> str:
    """One line for torch's refusal of an operation without a deterministic kernel."""
    op = torch_message.split(" does not have", 1)[0].strip().split()[-1]
    return (
        f"--deterministic: the model uses {op}, which has no deterministic implementation on "
        "this device; train without --deterministic (then repeated runs agree statistically, "
        "not bit for bit) or replace that layer (e.g. adaptive pooling by a mean)"
    )
