"""Training parts of ``bench/gpu.py``: bf16 / fp32 training steps, and DDP steps plus a sharded
label run under ``torchrun`` (see ``bench/gpu_parts.py`` for the row format and adapters)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_images  # noqa: E402
from bench.gpu_parts import (  # noqa: E402
    Row,
    Sizes,
    class_iou,
    label_config,
    mem_label,
    peak_mb,
    reset_peak,
    row,
    tiny_model_dirs,
    train_config,
)


def synth_data(tmp: Path, sizes: Sizes, n: int) -> Path:
    from engine.synth import SynthConfig, generate

    root = tmp / "synth"
    if not root.exists():
        generate(
            SynthConfig(out=root, train=n, val=0, test=0, size=sizes.train_image), progress=False
        )
    return root


def steady_it_s(out: Path) -> float:
    """Steps per second after the first logged window (data-loader start-up and kernel
    selection happen in it)."""
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [x["it_s"] for x in lines if "it_s" in x]
    later = rates[1:] or rates
    return float(np.mean(later))


def part_train(amp: bool):
    """The training part with bf16 autocast on CUDA (``amp``) or in fp32: ``trainer.train.train``
    on a synthetic dataset, steady it/s, peak memory."""

    def part(device: str, sizes: Sizes, small: bool, tmp: Path) -> list[Row]:
        from trainer.train import train

        data = synth_data(tmp, sizes, 2 * sizes.train_batch)
        cfg = train_config(
            data,
            tmp / "run",
            device,
            sizes,
            amp,
            sizes.train_crop,
            sizes.train_steps,
            sizes.train_batch,
        )
        reset_peak(device)
        res = train(cfg)
        it_s = steady_it_s(tmp / "run")
        import torch

        from engine.devices import bf16_autocast

        # what the run computed in: fp32 on a CPU, and on a GPU without native bf16 (a T4)
        name = "bf16" if bf16_autocast(amp, torch.device(device)) else "fp32"
        p = f"train-{'bf16' if amp else 'fp32'}"
        what = f"{sizes.train_preset} {sizes.train_crop}x{sizes.train_crop} crops, batch {sizes.train_batch}, {name}"
        return [
            row(p, f"{what}: it/s", f"{it_s:.3f}", "", None, it_s),
            row(p, f"{what}: {mem_label(device)}", f"{peak_mb(device):.0f}"),
            # train() stops with NonFiniteLossError on a NaN/inf loss: that is a failed part
            row(
                p,
                f"{what}: steps run, losses finite",
                f"{len(res.losses)} of {sizes.train_steps}",
                str(sizes.train_steps),
                len(res.losses) == sizes.train_steps and bool(np.isfinite(res.losses).all()),
            ),
        ]

    return part


# ---- DDP + sharded labeling under torchrun ------------------------------------------------------
def world_size(device: str) -> int:
    import torch

    return max(1, torch.cuda.device_count()) if device.startswith("cuda") else 2


def part_ddp(device: str, sizes: Sizes, small: bool, tmp: Path) -> list[Row]:
    """torchrun over every GPU (2 gloo ranks on CPU): a few DDP steps, then a sharded label run;
    replicas must hold identical parameters, the sharded labels must equal a single-process run."""
    from labeler.run import run_labeling

    world = world_size(device)
    synth_data(tmp, sizes, 2 * world * 2)
    det, sam = tiny_model_dirs(tmp)
    write_images(tmp / "ldata" / "images" / "train", 2 * world + 1, *sizes.label_wh)
    single = run_labeling(label_config(tmp, "single", det, sam, device))
    if single.failed:
        raise RuntimeError(f"single-process labeling failed: {single.failed[0]}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world)]
    cmd += ["--master-port", str(29500 + os.getpid() % 1000), str(ROOT / "bench" / "gpu.py")]
    cmd += ["--worker", "ddp", "--device", device, "--tmp", str(tmp)] + (
        ["--small"] if small else []
    )
    env = dict(os.environ, OMP_NUM_THREADS="1") if not device.startswith("cuda") else None
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-5000:], proc.stderr[-5000:], sep="\n")  # into logs/ddp.log
        # torchrun ends with a summary banner; the rank's exception line says more
        lines = [x for x in (proc.stderr + proc.stdout).splitlines() if "Error" in x] or ["?"]
        raise RuntimeError(f"torchrun exited {proc.returncode}: {lines[-1].strip()[:200]}")
    got = json.loads((tmp / "ddp.json").read_text())
    iou, same, n = class_iou(
        tmp / "single" / "labels" / "train", tmp / "sharded" / "labels" / "train"
    )
    p = "ddp"
    backend = "nccl" if device.startswith("cuda") else "gloo"
    one = " (1 GPU: no process group, NCCL not exercised)" if world == 1 else ""
    # one rank has nothing to agree with: not judged
    equal_params = len(set(got["param_sha1"])) == 1 if world > 1 else None
    return [
        row(p, f"torchrun --nproc-per-node {world} ({backend}){one}: wall s", f"{wall:.1f}"),
        row(p, f"DDP {sizes.ddp_steps} steps: it/s (rank 0)", f"{got['it_s']:.3f}"),
        row(
            p,
            "DDP: parameters identical on every rank",
            f"{len(set(got['param_sha1']))} distinct of {world}",
            "1" if world > 1 else "n/a (1 rank)",
            equal_params,
        ),
        row(
            p,
            f"sharded label run: images labelled over {world} ranks",
            f"{got['labelled']} of {single.labelled}",
            str(single.labelled),
            got["labelled"] == single.labelled,
        ),
        row(
            p,
            "sharded labels == single-process labels",
            f"{same:.4%} identical pixels, {n} files",
            "100%",
            n == single.labelled and same == 1.0,
            same,
        ),
    ]


def ddp_worker(device: str, sizes: Sizes, tmp: Path) -> None:
    """One torchrun rank: DDP training steps, parameter digest, then this rank's label shard."""
    import torch
    import torch.distributed as dist

    from labeler.run import run_labeling
    from trainer.train import train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = f"cuda:{local}" if device.startswith("cuda") else "cpu"
    cfg = train_config(
        tmp / "synth",
        tmp / "ddp-run",
        "auto" if dev != "cpu" else "cpu",
        sizes,
        True,
        sizes.ddp_crop,
        sizes.ddp_steps,
        2 * world,
    )
    cfg = dataclasses.replace(cfg, num_workers=0)
    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model(sizes.train_preset, 7)  # synth datasets have MaSS13K's 7 classes
    train(cfg, model=model)
    digest = hashlib.sha1()  # parameters, not buffers: BatchNorm statistics stay per rank
    for t in model.parameters():
        digest.update(t.detach().float().cpu().numpy().tobytes())
    digests = [digest.hexdigest()]
    if world > 1:
        digests = [None] * world
        dist.all_gather_object(digests, digest.hexdigest())
    summary = run_labeling(label_config(tmp, "sharded", tmp / "tiny-det", tmp / "tiny-sam", dev))
    counts = [summary.labelled]
    if world > 1:
        counts = [None] * world
        dist.all_gather_object(counts, summary.labelled)
    if rank == 0:
        out = {"param_sha1": digests, "labelled": sum(counts), "it_s": steady_it_s(tmp / "ddp-run")}
        (tmp / "ddp.json").write_text(json.dumps(out))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


part_train_bf16 = part_train(amp=True)
part_train_fp32 = part_train(amp=False)
