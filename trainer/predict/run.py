""":func:`predict_dir`, the entry point: the output folder locked, the model loaded, the
record written, and the images labelled one by one (:func:`_label`), each failing alone."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from annotations.fileio import atomic_write_json, first_line, is_disk_error
from annotations.labelmap import read_label, write_color_preview, write_label
from engine.datasets import DatasetSpec, check_folder_finished, load_image, load_spec
from engine.outputs import prediction_record
from engine.progress import track
from engine.runinfo import environment, kept_warnings
from engine.runlock import holds_lock, writer
from trainer.predict.config import AUTO, PredictConfig, PredictResult, inference_size
from trainer.predict.inputs import (
    check_not_image_folder,
    check_out,
    given_folders,
    input_images,
    stem_of,
)
from trainer.predict.record import (
    _warnings,
    changed_images,
    check_same_split,
    differences,
    earlier_failures,
    image_sizes,
    recorded_sizes,
    replaced_files,
    resume_refused,
    trained_on,
)

log = logging.getLogger(__name__)


def predict_dir(cfg: PredictConfig) -> PredictResult:
    """Predict every image of ``cfg.images`` into ``cfg.out``; see the module docstring. An
    output folder that is no place for predictions (:func:`check_out`) is refused before it is
    locked: nothing is written there, not even the lock file."""
    spec = None
    if cfg.images is None and cfg.data is not None:
        spec = load_spec(cfg.data)  # read once: the folder checked here, the images listed
        spec.check_finished("engine predict")  # engine synth writing it, or stopped half way
    elif cfg.images is not None:  # D/images/test of such a dataset, given by itself
        check_folder_finished(cfg.images, "engine predict")
    check_out(Path(cfg.out), given_folders(cfg, spec))
    from trainer.checkpoint import caller_rng, torch_defaults

    # building the network draws from torch's rng; the warnings it prints are kept in
    # predict.json too: a run under nohup keeps what it said
    with caller_rng(), torch_defaults(), kept_warnings() as said:
        return _predict(cfg, spec, said)


@holds_lock("engine predict", lambda c: c.out, own=("predict.json",))
def _predict(cfg: PredictConfig, spec: DatasetSpec | None, said: list[str]) -> PredictResult:
    """:func:`predict_dir`, holding the output folder's lock (``spec``: ``cfg.data``'s, read;
    ``said``: the warnings printed so far, :func:`engine.runinfo.kept_warnings`)."""
    from engine.devices import bf16_autocast
    from trainer.checkpoint import model_from_checkpoint, weights_digest
    from trainer.inference import (
        MODES,
        GuidedFilter,
        autocast_dtype,
        check_guided_filter,
        check_sliding_window,
        check_tta,
    )
    from trainer.models.massformer import MIN_SIDE
    from trainer.train import resolve_device

    if isinstance(cfg.size, str) and cfg.size != AUTO:
        raise ValueError(f"size must be (W, H), None or {AUTO!r}, got {cfg.size!r}")
    if isinstance(cfg.size, tuple | list) and min(cfg.size) < MIN_SIDE:
        # every image would fail alone, one line each, with the same reason (before, the CLI's
        # check only: a library caller's size=(10, 10) wrote nothing, every image "failed")
        shown = "x".join(map(str, cfg.size))
        raise ValueError(f"--size {shown}: the model needs at least {MIN_SIDE} px per side")
    if cfg.mode not in MODES:
        raise ValueError(f"unknown inference mode {cfg.mode!r}; known: {', '.join(MODES)}")
    check_tta(cfg.scales, cfg.flip, cfg.mode)  # before the model loads or anything is written
    check_sliding_window(cfg.sliding_window, cfg.mode)
    gf = {
        "radius": cfg.gf_radius,
        "eps": cfg.gf_eps,
        "guide": cfg.gf_guide,
        "subsample": cfg.gf_subsample,
    }
    guided = GuidedFilter(**gf) if cfg.guided_filter else None
    if guided is None and gf != asdict(GuidedFilter()):
        # named as the command line spells them (the config field is gf_<name>)
        given = [f"--gf-{k} {v}" for k, v in gf.items() if v != asdict(GuidedFilter())[k]]
        raise ValueError(
            f"{', '.join(given)} only set{'s' if len(given) == 1 else ''} the guided filter, "
            "which is off: add --guided-filter"
        )
    check_guided_filter(guided, cfg.mode)
    images, left_out = input_images(cfg, spec)
    if cfg.images is None:  # --data's images, now listed (their folder: predict_dir checked)
        check_not_image_folder(Path(cfg.out), {p.parent for p in images})
    meta = prediction_record(cfg.out)  # read once: the split, settings and failures it records
    check_same_split(meta, cfg, Path(cfg.out))  # before the model loads
    device = resolve_device(cfg.device)
    # bf16 autocast where the GPU computes in bf16 (compute capability 8.0 on); a T4's or
    # V100's is emulated, slower than fp32: fp32 there, and predict.json's autocast says null
    amp = bf16_autocast(cfg.amp, device)
    model, taxonomy, ckpt = model_from_checkpoint(cfg.checkpoint, device)
    size_source = "given"
    if cfg.size == AUTO:
        size, size_source = inference_size(ckpt)
        cfg = replace(cfg, size=size)
    weights = weights_digest(ckpt["model"])
    out = Path(cfg.out)
    step = int(ckpt["step"])
    run = Path(cfg.checkpoint) if Path(cfg.checkpoint).is_dir() else Path(cfg.checkpoint).parent
    if (training := writer(run)) is not None:  # monitoring a run: a normal use, but said
        log.warning(
            "%s: %s is training it now: these predictions are of its checkpoint at step %s, "
            "not of the finished model",
            run,
            training,
            f"{step:,}",
        )
    earlier: list[Path] = []  # the label maps of other settings that this run replaces
    if diffs := differences(meta, cfg, step, weights):
        if cfg.overwrite:
            earlier = replaced_files(out, images, diffs, spec)
        elif any(p.is_file() for p in out.glob("*.png")):  # of these images or others
            raise resume_refused(out / "predict.json", diffs)
    sizes = image_sizes(images, spec)
    # the failures of other settings are not kept
    kept = [] if diffs else earlier_failures(meta, out, sizes.keys(), spec)
    if not diffs and not cfg.overwrite:
        earlier = changed_images(meta, out, sizes)
    # the calls before this one whose label maps stay (the same settings, no --overwrite):
    # their warnings are kept beside this call's
    earlier_record = meta if not diffs and not cfg.overwrite else None
    out.mkdir(parents=True, exist_ok=True)
    if earlier and meta is not None and meta.get("status") != "running":
        # the earlier record says its folder is not whole before a map goes: a run killed
        # among the removals left it finished, and engine info read 1 label map of 2 as done
        atomic_write_json(out / "predict.json", {**meta, "status": "running"})
    for p in earlier:  # before the record names this run: none passes for this run's later
        p.unlink(missing_ok=True)
    record = {
        "config": asdict(cfg),
        "size_source": size_source,
        # what --device auto and cfg.amp came to here: on a GPU the maps are of bf16 arithmetic
        # (before the forty-second round the record said "auto" only)
        "device_used": str(device),
        "autocast": autocast_dtype(amp, device.type, cfg.mode),
        "checkpoint_step": step,
        "weights_sha256": weights,  # which weights made these label maps
        "model_config": ckpt["model_config"],
        "trained_on": trained_on(ckpt),  # what a report on training images warns about
        "taxonomy": taxonomy.to_dict(),
        "environment": environment(),
        # "running" until every image was tried: a run killed half way keeps it, so that
        # engine info and the scoring commands can say its folder is partial, and why
        "status": "running",
        "image_count": len(images),  # the images this run labels (those already there too)
        "failed": kept,  # the images without a label map, each with its reason
        # each image's file size by stem: a rerun predicts again an image replaced since
        "image_bytes": {**recorded_sizes(meta), **sizes},
        # what this call printed (a checkpoint still training, images predicted again, files
        # of other kinds left out): the console of a nohup run is gone
        **_warnings(said, left_out, cfg, earlier_record),
    }
    atomic_write_json(out / "predict.json", record)
    result = PredictResult(out=out, size=cfg.size, size_source=size_source, left_out=left_out)
    finished = False
    try:
        _label(cfg, images, model, taxonomy, device, guided, result, spec)
        finished = True
    finally:  # an interrupted run records the failures it met too
        failed = [
            {"image": str(p), "reason": r}
            for p, r in result.failed
            if not (
                out / f"{stem_of(p, spec)}.png"
            ).exists()  # a preview's failure: the map is there
        ]
        if failed or finished:
            status = "finished" if finished else "running"
            # warnings: those said since the first record too (``said`` only grows)
            record = {**record, "status": status, "failed": kept + failed}
            record.update(_warnings(said, left_out, cfg, earlier_record))
            atomic_write_json(out / "predict.json", record)
    return result


def size_refusal(
    width: int, height: int, size: tuple[int, int] | None, source: str = "given"
) -> str | None:
    """:func:`trainer.inference.size_refusal` in the words of the ``--size`` the user gave:
    ``given`` (``source``, :attr:`PredictResult.size_source`) names ``--size original`` or
    ``--size WxH``, otherwise ``--size auto`` and the size it came to."""
    from trainer.inference import size_refusal

    shown = "original" if size is None else "x".join(map(str, size))
    option = f"--size {shown}" if source == "given" else f"--size auto ({source}: {shown})"
    return size_refusal(width, height, size, option)


def _label(
    cfg: PredictConfig,
    images: list[Path],
    model: torch.nn.Module,
    taxonomy: Any,
    device: torch.device,
    guided: Any,
    result: PredictResult,
    spec: DatasetSpec | None = None,
) -> None:
    """Label ``images`` into ``result.out`` (the loop of :func:`predict_dir`), filling
    ``result``."""
    from trainer.inference import predict_label

    out = result.out
    start = time.perf_counter()
    for path in track(images, "predict", enabled=cfg.progress):
        target = out / f"{stem_of(path, spec)}.png"
        preview = out / "color" / f"{stem_of(path, spec)}.png"
        if target.exists() and not cfg.overwrite:
            result.skipped += 1
            if cfg.color and not preview.exists():  # labelled by a run without --color
                try:
                    write_color_preview(preview, read_label(target), taxonomy, load_image(path))
                    result.previews += 1
                except (OSError, ValueError) as e:
                    if is_disk_error(e):
                        raise  # every preview after it would fail the same way
                    result.failed.append((path, f"{preview}: {first_line(e)}"))
            continue
        try:
            image = load_image(path)
            too_small = size_refusal(image.shape[1], image.shape[0], cfg.size, result.size_source)
            if too_small:
                raise ValueError(too_small)
            label = predict_label(
                model,
                image,
                size=cfg.size,
                mode=cfg.mode,
                sliding_window=cfg.sliding_window,
                device=device,
                amp=cfg.amp,  # bf16 where the GPU computes in it (predict_scores)
                scales=cfg.scales,
                flip=cfg.flip,
                guided_filter=guided,
            )
        except (OSError, ValueError, RuntimeError) as e:  # this image only (torch OOM included)
            message = first_line(e)
            reason = message if str(path) in message else f"{path}: {message}"
            result.failed.append((path, reason))
            continue
        write_label(target, label)
        if cfg.color:
            write_color_preview(preview, label, taxonomy, image)
        result.written.append(target)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - start
