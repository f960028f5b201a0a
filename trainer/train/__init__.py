"""The MaSSFormer training loop (``engine train``): AdamW + cosine, bf16 on CUDA, gradient
accumulation, DDP under torchrun, atomic checkpoints with exact resume, periodic validation.

Run directory (written by rank 0 only)::

    config.yaml, config.json   resolved TrainConfig (+ config_hash in config.json)
    environment.json           engine.runinfo.environment() of the first start; under DDP its
                               "distributed": the ranks and machines (trainer.ranks.layout)
    resumes.jsonl              one line per resume: step and environment
    init.json                  with --init: what was loaded, grown and dropped
    metrics.jsonl              {"step", "lr", "loss", "loss_ce", ...} every log_every steps;
                               {"step", "val": {...}} after each validation;
                               {"step", "event": "warning", "message"} for each warning printed
                               (engine info RUN shows them: a nohup run's console is gone)
    curves.png                 loss, learning rate and validation curves (trainer.curves)
    skipped.jsonl              images the run could not read (SkippedLog)
    last.pt, step_NNNNNNN.pt   checkpoints (trainer.checkpoint)
    saved_step.json            last.pt's step, size and time (engine.runinfo.record_saved_step)
    tensorboard/               event files when the tensorboard package is installed

The records (all but the checkpoints and tensorboard/) are engine.runinfo.TRAIN_RUN_RECORDS:
given as a checkpoint, trainer.checkpoint.load_checkpoint names last.pt.

The package's modules, from the entry point down: ``run`` (:func:`train`: the run's lock,
its local processes or this one), ``loop`` (one process's training loop and its
:class:`TrainResult`), ``step`` (one optimizer step's gradients, a NaN/inf loss's stop),
``distributed`` (what the ranks share and agree on), ``records`` (the run folder's files
and logs), ``resume`` (a resume's checks of the checkpoint against the run), ``model`` (the
model's AdamW groups, frozen BatchNorms, float32) and ``checks`` (the options and data
checked before anything is written).
"""

from engine.runinfo import file_sha256  # imported from here by callers before the split
from trainer.config import TrainConfig
from trainer.train.checks import (
    MAX_CROP,
    UPSCALE_WARNING,
    check_crop,
    check_gpu_per_rank,
    check_val_size,
    micro_batch,
    resolve_device,
    validation_split,
    validation_upscale,
)
from trainer.train.distributed import (
    _agree_to_stop,
    _distributed,
    _step_checks,
    check_run_folder_shared,
    node_shm_shortfalls,
    owns_run,
)
from trainer.train.loop import TrainResult
from trainer.train.model import NORM_TYPES, check_float32, freeze_batchnorm_statistics, param_groups
from trainer.train.records import (
    NO_LABEL_BATCHES,
    SKIPPED_LOG,
    RunWarnings,
    SkippedLog,
    _draw_curves,
    _draw_missing_curves,
    _tensorboard,
    _write_run_files,
    warn_unlabelled,
)
from trainer.train.resume import (
    DAMAGED_FIX,
    DEVICE_ERRORS,
    RESUMABLE_CHANGES,
    SAME_BYTES,
    _changed_schedule,
    _check_resume_config,
    _check_resume_iters,
    _finished,
    damaged_state,
    file_sizes,
)
from trainer.train.run import train
from trainer.train.step import NonFiniteLossError

__all__ = [
    "DAMAGED_FIX",
    "DEVICE_ERRORS",
    "MAX_CROP",
    "NORM_TYPES",
    "NO_LABEL_BATCHES",
    "NonFiniteLossError",
    "RESUMABLE_CHANGES",
    "RunWarnings",
    "SAME_BYTES",
    "SKIPPED_LOG",
    "SkippedLog",
    "TrainConfig",
    "TrainResult",
    "UPSCALE_WARNING",
    "_agree_to_stop",
    "_changed_schedule",
    "_check_resume_config",
    "_check_resume_iters",
    "_distributed",
    "_draw_curves",
    "_draw_missing_curves",
    "_finished",
    "_step_checks",
    "_tensorboard",
    "_write_run_files",
    "check_crop",
    "check_float32",
    "check_gpu_per_rank",
    "check_run_folder_shared",
    "check_val_size",
    "damaged_state",
    "file_sha256",
    "file_sizes",
    "freeze_batchnorm_statistics",
    "micro_batch",
    "node_shm_shortfalls",
    "owns_run",
    "param_groups",
    "resolve_device",
    "train",
    "validation_split",
    "validation_upscale",
    "warn_unlabelled",
]
