"""The training loop of one process (:func:`_train`): the run set up or resumed, its
steps, validations and checkpoints, and what it returns (:class:`TrainResult`)."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from annotations.fileio import append_line, atomic_copy, atomic_write_json
from engine import stopping
from engine.datasets import load_spec
from engine.devices import bf16_autocast
from engine.progress import make_progress
from engine.runinfo import file_sha256, record_saved_step
from trainer.checkpoint import (
    checkpoint_dict,
    load_checkpoint,
    load_weights,
    model_config_of,
    save_checkpoint,
    set_rng_state,
)
from trainer.config import TrainConfig, lr_factor, plain, resolve_workers
from trainer.data import TrainSet, make_loader, rare_new_classes
from trainer.losses import SetCriterion
from trainer.ranks import layout
from trainer.train.checks import (
    check_val_size,
    micro_batch,
    resolve_device,
    validation_split,
    validation_upscale,
)
from trainer.train.distributed import (
    _agree_to_stop,
    _distributed,
    _gather_rng_states,
    _step_checks,
    check_run_folder_shared,
    node_shm_shortfalls,
    owns_run,
)
from trainer.train.model import _backbone_weights, freeze_batchnorm_statistics, param_groups
from trainer.train.records import (
    NO_LABEL_BATCHES,
    SKIPPED_LOG,
    RunWarnings,
    SkippedLog,
    _draw_curves,
    _draw_missing_curves,
    _drop_lines_after,
    _log_step,
    _tensorboard,
    _write_run_files,
    warn_unlabelled,
)
from trainer.train.resume import (
    DEVICE_ERRORS,
    _changed_files,
    _changed_schedule,
    _changed_split,
    _check_resume_classes,
    _check_resume_config,
    _check_resume_iters,
    _check_resume_state,
    _finished,
    _resumed_config,
    damaged_state,
    file_sizes,
)
from trainer.train.step import NonFiniteLossError, _forward_backward, _non_finite_message
from trainer.validate import check_one_subset_per_class, load_subset, subset_warnings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trainer.init import InitReport


@dataclass
class TrainResult:
    """What a call to :func:`~trainer.train.run.train` did."""

    out: Path  # run directory
    step: int  # optimizer steps completed in total (including before a resume)
    losses: list[float] = field(default_factory=list)  # total loss of each step run in this call
    last_checkpoint: Path | None = None  # the newest last.pt written
    val: list[dict[str, Any]] = field(default_factory=list)  # validation results, in order
    init: InitReport | None = (
        None  # what --init loaded, grew and dropped (None: no init, or a resume)
    )
    finished: bool = False  # a resume of a run already finished: nothing done, nothing written
    redrawn: bool = False  # ... but its missing curves.png, drawn again


def _train(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_init: Callable[[InitReport], None] | None = None,
    val_size_from: str | None = None,
    notes: Sequence[str] = (),
) -> TrainResult:
    """Train (or resume) one run as configured. ``model``: an already built model (tests);
    by default ``create_model(cfg.preset, K)`` with the configured backbone weights.
    ``cfg.init``: a fresh run starts from that checkpoint's weights (:mod:`trainer.init`);
    ``on_init`` receives the report on rank 0 before the first step (the CLI prints it), and
    the run directory keeps it as ``init.json``.

    Raises:
        FileExistsError: ``<out>/last.pt`` exists and ``resume`` is off.
        FileNotFoundError: ``resume`` is on and there is no ``<out>/last.pt``.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
    """
    rank, world, local_rank = _distributed(resolve_device(cfg.device).type)
    init_report: InitReport | None = None
    is_main = rank == 0
    device = resolve_device(cfg.device, local_rank)
    out = Path(cfg.out)
    last = out / "last.pt"
    ckpt = spec = None
    check_run_folder_shared(last, cfg.resume, world)
    if cfg.resume:
        ckpt = load_checkpoint(last)
        _check_resume_state(ckpt, last)
        cfg = _resumed_config(ckpt, cfg)
        _check_resume_config(ckpt["config"], cfg, last)
        spec = load_spec(cfg.data)  # read once: the classes here, the training and val splits
        _check_resume_classes(ckpt, cfg, spec.taxonomy, last)
        _check_resume_iters(ckpt, cfg, last)
        if _finished(ckpt, cfg, out, world, rank):  # nothing to do: no validation, no file touched
            # but its curves.png, when the disk filled as the end of the run drew it: before,
            # the resume its error advised found the run finished and drew nothing
            drawn = is_main and _draw_missing_curves(out)
            return TrainResult(out=out, step=int(ckpt["step"]), finished=True, redrawn=drawn)
    elif is_main:
        # A fresh run's logs start empty (a run that died before its first checkpoint leaves
        # them behind); before DDP's first collective, so no other rank has written yet.
        for name in ("metrics.jsonl", "resumes.jsonl", SKIPPED_LOG):
            (out / name).unlink(missing_ok=True)
    micro = micro_batch(cfg, world)

    spec = spec or load_spec(cfg.data)
    if not owns_run():  # a rank (torchrun's, --processes'); the run's owner checked it in train()
        spec.check_finished("engine train")
    dataset = TrainSet(spec, cfg.train_split, cfg.augment, cfg.all_precise, given=cfg.data)
    val_data = validation_split(cfg, spec) if cfg.val_split else None
    # the validation split and annotated subsets, resolved before the model is built (and its
    # backbone weights fetched), so a missing split or a bad path fails at once
    subset_data = val_data or dataset.data
    subsets = [load_subset(p, subset_data) for p in cfg.val_subsets]
    check_one_subset_per_class(subsets)
    validates = val_data is not None or bool(subsets)
    if validates:  # named by the config file that set it (val_size_from), else as --val-size
        check_val_size(subset_data, cfg.val_size, val_size_from)
    # warnings only once every check passed: a refused run prints its error alone
    # the files' sizes this call trains on: stat'ed once (3 files an image), not at every
    # checkpoint; recorded in each, compared on a resume
    train_files = file_sizes(dataset) if is_main else {}
    start = int(ckpt["step"]) if ckpt is not None else 0
    said = RunWarnings(out)
    for note in notes if is_main else ():  # the caller's, about its options
        said.warn(note, start)
    if is_main and ckpt is not None:
        for warning in (
            _changed_split(ckpt, dataset, cfg),
            _changed_files(ckpt, train_files, dataset, cfg),
            _changed_schedule(ckpt, cfg),
        ):
            if warning:
                said.warn(warning, start)
    for warning in subset_warnings(subsets, cfg.train_split) if is_main else ():
        said.warn(warning, start)
    if is_main and validates and (warning := validation_upscale(subset_data, cfg.val_size)):
        said.warn(warning, start)
    for warning in rare_new_classes(dataset) if is_main else ():
        said.warn(warning, start)
    workers = resolve_workers(cfg.num_workers)
    for warning in node_shm_shortfalls(micro, cfg.augment.crop, workers, world, local_rank):
        if is_main:
            said.warn(warning, start)
    taxonomy = dataset.taxonomy
    k = taxonomy.num_classes
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    if model is None and ckpt is not None:
        # the network the run trained, as its checkpoint records it: a preset whose widths
        # changed since (massformer_lite_r18, thirty-first round) still resumes
        from trainer.models import build_model

        model = build_model(model_config_of(ckpt, str(last)))
    elif model is None:
        from trainer.models import create_model

        model = create_model(
            cfg.preset, k, backbone_weights=_backbone_weights(cfg), backbone_norm=cfg.backbone_norm
        )
    if model.config.num_classes != k:
        raise ValueError(
            f"{cfg.data}: the dataset has {k} classes but the model predicts {model.config.num_classes}"
        )
    if ckpt is not None:
        load_weights(model, ckpt["model"], str(last))
    elif cfg.init:
        from trainer.init import init_from_checkpoint

        init_report = init_from_checkpoint(model, cfg.init, taxonomy)
        if is_main and (warning := init_report.architecture_warning()):
            said.warn(warning, start)
    model.to(device).train()
    if cfg.freeze_bn_stats:
        freeze_batchnorm_statistics(model)
    dec = cfg.loss.decoupling
    pseudo: frozenset[int] = frozenset(
        dec.pseudo_classes
        if dec.pseudo_classes is not None
        else (c.id for c in taxonomy if c.parent is not None)
    )
    # the origin form's drawn edges: a new class against the class it was carved out of
    parents = {c.id: (c.parent,) for c in taxonomy if c.parent is not None and c.id in pseudo}
    criterion = SetCriterion(k, cfg.loss)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except DEVICE_ERRORS:  # the device's (its memory full), not the file's
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise damaged_state(last, "optimizer", f"cannot be restored ({e!r:.200})") from None
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.ddp_find_unused,
        )
    loader = make_loader(
        dataset,
        micro,
        cfg.seed,
        workers,
        rank,
        world,
        start * micro * cfg.accum_steps,
        pin_memory=device.type == "cuda",
    )
    amp = bf16_autocast(cfg.amp, device)
    if cfg.amp and device.type == "cuda" and not amp and is_main:
        # a T4's or V100's bf16 is emulated (slower than fp32, no cuDNN bf16 convolutions), and
        # fp16 would need a gradient scaler this loop does not have: fp32, said and kept
        said.warn(f"{device} has no native bf16 (compute capability below 8.0): training in "
                  "float32; amp is on for GPUs from the A100 on", start)  # fmt: skip
    result = TrainResult(out=out, step=start)
    writer = None
    ranks = layout(world)  # a collective: the processes and machines the run trains on
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is not None:
            _drop_lines_after(out / "metrics.jsonl", start)
        _write_run_files(out, cfg, start, taxonomy, ranks)
        said.open()
        writer = _tensorboard(out, start)
        if init_report is not None:
            result.init = init_report
            # with the start's hash: a resume from a moved copy of it is recognised
            record = {**init_report.to_dict(), "sha256": file_sha256(cfg.init)}
            atomic_write_json(out / "init.json", record)
            if on_init is not None:
                on_init(init_report)
    if ckpt is not None:
        try:
            rng_ranks = ckpt.get("rng_ranks") or []
            # last: everything above may draw random numbers
            rng = rng_ranks[rank] if len(rng_ranks) == world else ckpt["rng"]
            set_rng_state(rng, device.type == "cuda")
        except DEVICE_ERRORS:
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
            raise damaged_state(last, "rng", f"cannot be restored ({e!r:.200})") from None

    def checkpoint_state(step: int, rngs: list[dict[str, Any]]) -> dict[str, Any]:
        return checkpoint_dict(
            step,
            model.state_dict(),
            plain(dataclasses.asdict(model.config)),
            taxonomy.to_dict(),
            optimizer=optimizer.state_dict(),
            scheduler={
                "name": "cosine",
                "step": step,
                "iters": cfg.iters,
                "warmup_iters": cfg.warmup_iters,
                "min_lr_ratio": cfg.min_lr_ratio,
            },
            rng=rngs[0],
            rng_ranks=rngs,  # every rank's generators, so a DDP resume is exact on all ranks
            config=plain(cfg.to_dict()),
            train_images=len(dataset),  # a resume on another number draws another stream
            train_files=train_files,  # a resume on files changed since says so
        )

    def validate(step: int) -> None:
        if val_data is None and not subsets:
            return
        from trainer.validate import evaluate, evaluate_subset, label_new_classes, rank_samples

        # a bar of its own under the training's (rank 0's images and the subsets), removed
        # when done: at the release's 4096x3072 a CPU takes seconds an image
        images = len(rank_samples(val_data, cfg.val_max_images, rank, world)) if val_data else 0
        images += sum(len(t.samples) for t in subsets) if is_main else 0
        val_task = progress.add_task(f"validate (step {step})", total=images, info="")
        advance = functools.partial(progress.advance, val_task)

        res: dict[str, Any] | None = {}
        if val_data is not None:
            res = evaluate(
                model,
                val_data,
                cfg.val_size,
                device,
                amp,
                cfg.val_sliding_window,
                cfg.val_max_images,
                distributed=world > 1,
                on_image=advance,
            )
            if res is not None:
                label_new_classes(res, taxonomy)
        if is_main and res is not None and subsets:
            res["subsets"] = [
                evaluate_subset(
                    model,
                    t,
                    subset_data,
                    cfg.val_size,
                    device,
                    amp,
                    cfg.val_sliding_window,
                    on_image=advance,
                )
                for t in subsets
            ]
        progress.remove_task(val_task)
        if is_main and res is not None:
            found = [
                *res.get("skipped", ()),
                *(p for t in res.get("subsets", ()) for p in t.get("skipped", ())),
            ]
            skipped.note(found, step, "validation")
            result.val.append({"step": step, **res})
            append_line(out / "metrics.jsonl", json.dumps({"step": step, "val": res}))
            if writer is not None:
                for key in ("mIoU", "mBIoU", "mBF1"):
                    if res.get(key) is not None:
                        writer.add_scalar(f"val/{key}", res[key], step)
            if step != cfg.iters:  # the last is drawn when the call ends
                _draw_curves(out)

    params = [p for p in model.parameters() if p.requires_grad]
    skipped = SkippedLog(out, rank)
    data_iter = iter(skipped.batches(loader, lambda: result.step + 1))
    stop = (
        cfg.iters if cfg.max_steps_this_run <= 0 else min(cfg.iters, start + cfg.max_steps_this_run)
    )
    if is_main:
        where = str(dataset.data.spec.label_dir(dataset.data.split))
        limit = min(NO_LABEL_BATCHES, (stop - start) * cfg.accum_steps)
        data_iter = warn_unlabelled(
            data_iter, limit, where, lambda w: said.warn(w, result.step + 1)
        )
    t_last, n_last = time.perf_counter(), start
    progress = make_progress("it", "{task.fields[info]}", cfg.progress and is_main)
    with progress:
        task = progress.add_task("train", total=cfg.iters, completed=start, info="loss -  lr -")
        with stopping.deferred():  # a SIGTERM: the loop stops at a step's end (halt, below)
            for step in range(start, stop):
                total_t, terms, grad_norm = _forward_backward(
                    net,
                    criterion,
                    data_iter,
                    optimizer,
                    params,
                    cfg,
                    device,
                    amp,
                    world,
                    pseudo,
                    parents,
                )
                # one all-reduce: finite on every rank, and whether any rank got a SIGTERM
                finite, halt = _step_checks(
                    torch.stack([total_t, grad_norm]), stopping.requested_code(), world
                )
                if not finite:
                    bad = {n: v for n, v in terms.items() if not np.isfinite(v)}
                    bad = bad or {"grad_norm": float(grad_norm)}
                    if is_main:
                        event = {"step": step + 1, "event": "non_finite", "terms": bad}
                        append_line(out / "metrics.jsonl", json.dumps(event))
                    raise NonFiniteLossError(_non_finite_message(step + 1, bad, last))
                factor = lr_factor(step, cfg.iters, cfg.warmup_iters, cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                optimizer.step()
                done = step + 1
                total = float(total_t)
                result.losses.append(total)
                result.step = done
                lr_now = cfg.lr * factor
                progress.update(task, completed=done, info=f"loss {total:.4f}  lr {lr_now:.2e}")
                # a slice's end too (max_steps_this_run): its last.pt is logged, so engine info names it
                if is_main and (done % cfg.log_every == 0 or done in (cfg.iters, stop)):
                    now = time.perf_counter()
                    rate = (done - n_last) / max(now - t_last, 1e-9)
                    t_last, n_last = now, done
                    _log_step(out, writer, done, lr_now, total, float(grad_norm), rate, terms)
                if cfg.val_every > 0 and done % cfg.val_every == 0 and done != cfg.iters:
                    halt = halt or _agree_to_stop(world, device)
                    if not halt:
                        try:
                            with stopping.undeferred():  # minutes: a SIGTERM stops it at once
                                validate(done)
                        except stopping.Terminated:
                            if world > 1:  # ranks cut at different points cannot agree to save
                                raise
                            # the step is whole (validation draws no random numbers): save it,
                            # as a SIGTERM at a step's end does, instead of losing every step
                            # since the last checkpoint
                            halt = True
                # a kept step is a checkpoint too: kept only where last.pt was refreshed, a
                # keep_every of 500 under checkpoint_every 1,000 kept every other file promised
                keep = cfg.keep_every > 0 and done % cfg.keep_every == 0
                if halt or keep or done % cfg.checkpoint_every == 0 or done in (cfg.iters, stop):
                    # a collective: every rank takes part
                    rngs = _gather_rng_states(world, device.type == "cuda")
                    if is_main:
                        state = checkpoint_state(done, rngs)
                        result.last_checkpoint = save_checkpoint(last, state)
                        record_saved_step(last, done)  # engine info reads it without torch
                        if keep:  # last.pt's bytes: torch.save's again, at a fraction of
                            # its cost (docs/trainer.md, "What a save costs")
                            atomic_copy(last, out / f"step_{done:07d}.pt")
                if halt:  # every rank together, the step checkpointed: --resume goes on here
                    if is_main and n_last != done:  # the step saved is logged, so engine info
                        # names it (before: "step 0 of N, no step logged", last.pt at step 3)
                        rate = (done - n_last) / max(time.perf_counter() - t_last, 1e-9)
                        _log_step(out, writer, done, lr_now, total, float(grad_norm), rate, terms)
                    stopping.passed_on(halt)  # a rank's SIGTERM or SIGHUP stops each as it
                    # stops that one: named as that one names it (a SIGHUP's 129 not 143)
                    raise stopping.Terminated(done, str(last))
        if result.step == cfg.iters:
            validate(result.step)
    if writer is not None:
        writer.close()
    if is_main:
        _draw_curves(out)
    return result
