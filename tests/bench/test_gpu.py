"""``bench/gpu.py`` at toy sizes on the CPU (``--small``): every code path of the GPU benchmark
runs, its exactness checks are judged, and a failing part is a table row, not a crash."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu.py"


def run(
    out: Path, *args: str, timeout: int = 600, env: dict | None = None
) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--small", "--out", str(out), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)
    report = json.loads((out / "gpu.json").read_text()) if (out / "gpu.json").is_file() else {}
    return res, report


def rows_of(report: dict, part: str) -> dict[str, dict]:
    return {r["figure"]: r for r in report["rows"] if r["part"] == part}


def test_labeling_and_metrics_parts_run_on_cpu(tmp_path):
    """The default-suite smoke run: the labeling part (tiny Grounding DINO + SAM through the
    engine and the per-image loop), the SAM 3 part and the metrics' torch path."""
    res, report = run(tmp_path, "--parts", "labeling,sam3,metrics", "--timeout-scale", "4")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert {k: v["status"] for k, v in report["parts"].items()} == {
        "labeling": "ok",
        "sam3": "ok",
        "metrics": "ok",
    }
    lab = rows_of(report, "labeling")
    speed = next(r for f, r in lab.items() if f.startswith("engine speed-up"))
    assert speed["raw"] > 0 and speed["target"] == ">= 3x (same GPU)" and speed["ok"] is None
    for name in ("per-image pipeline", "engine"):  # where each pipeline's seconds go
        stages = next(r for f, r in lab.items() if f.startswith(f"{name}, s/img by stage"))
        assert {"detect", "segment", "merge", "write"} <= set(stages["raw"]), stages
        assert all(v >= 0 for v in stages["raw"].values()) and "detect" in stages["value"]
    assert {"wait for decode", "wait for writers"} <= set(stages["raw"])  # the engine's waits
    more = next(r for f, r in lab.items() if f.startswith("engine with 4 writer threads"))
    assert float(more["value"]) > 0
    iou = next(r for f, r in lab.items() if "mask IoU" in f)
    assert iou["raw"] == 1.0  # both pipelines are fp32 on the CPU: the same labels
    from labeler.backends import BACKENDS, LAZY_BACKENDS

    sam3 = rows_of(report, "sam3")
    if "sam3" in set(BACKENDS) | set(LAZY_BACKENDS):  # registered: measured with a tiny model
        assert any(f.endswith("img/s") and float(r["value"]) > 0 for f, r in sam3.items())
    else:
        assert [r["value"] for r in sam3.values()] == ["not available (not in labeler.backends)"]
    met = rows_of(report, "metrics")
    counts = next(r for f, r in met.items() if "counts vs CPU path" in f)
    assert counts["value"] == "identical" and counts["ok"] is True
    md = (tmp_path / "gpu.md").read_text()
    assert "| part | figure | value | target | pass |" in md and "not GPU figures" in md
    assert "| metrics |" in res.stdout


def test_a_part_that_runs_out_of_time_is_a_failed_row(tmp_path):
    scratch = tmp_path / "tmpdir"  # the system temp folder, as the benchmark sees it
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    res, report = run(tmp_path / "out", "--parts", "metrics", "--timeout-scale", "0.01", env=env)
    assert res.returncode == 1
    assert list(scratch.iterdir()) == []  # the killed part's scratch folder is removed
    assert report["parts"]["metrics"]["status"].startswith("timed out after")
    (failed,) = report["rows"]
    assert failed["figure"] == "part failed" and failed["ok"] is False
    assert "timed out" in failed["value"]
    assert "FAIL" in (tmp_path / "out" / "gpu.md").read_text()


def test_unknown_part_is_one_line_exit_2(tmp_path):
    res, _ = run(tmp_path, "--parts", "labeling,nope")
    assert res.returncode == 2
    assert "unknown parts ['nope']" in res.stderr and "Traceback" not in res.stderr


def test_cuda_without_a_gpu_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    # the script's main() in this process: a subprocess spent its 2 s importing torch before the
    # refusal; argparse's exit is SystemExit(2) here, a traceback an exception that fails the test
    sys.path.insert(0, str(ROOT))
    from bench import gpu

    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--device", "cuda", "--out", str(tmp_path)])
    # main() installs its SIGTERM handler (sys.exit(143)) before it refuses: left in pytest's
    # process, a CI cancel or an outer `timeout` read as a failure of whichever test ran next
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exited:
            gpu.main()
    finally:
        signal.signal(signal.SIGTERM, handler)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "gpu.json").exists()


def test_table_and_derived_rows():
    sys.path.insert(0, str(ROOT))
    from bench.gpu import derived_rows, table

    rows = [
        {
            "part": "train-bf16",
            "figure": "m: it/s",
            "value": "2",
            "target": "",
            "ok": None,
            "raw": 2.0,
        },
        {
            "part": "train-fp32",
            "figure": "m: it/s",
            "value": "1",
            "target": "",
            "ok": None,
            "raw": 1.0,
        },
    ]
    (d,) = derived_rows(rows, small=False)
    assert d["value"] == "2.00x" and d["ok"] is True
    assert derived_rows(rows, small=True)[0]["ok"] is None  # toy sizes are not judged
    assert derived_rows(rows[:1], small=False) == []
    text = table([{**rows[0], "value": "a|b", "ok": False}])
    assert text.splitlines()[-1] == "| train-bf16 | m: it/s | a/b | - | FAIL |"


@pytest.mark.slow
def test_every_part_runs_on_cpu(tmp_path):
    """The whole ``--small`` run: training (bf16 and fp32 parts), the 64 MP check's code path,
    torchrun with two gloo ranks (DDP parameters equal on both ranks, sharded labels equal to a
    single-process run)."""
    res, report = run(tmp_path, "--timeout-scale", "4", timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert all(p["status"] == "ok" for p in report["parts"].values()), report["parts"]
    assert not [r for r in report["rows"] if r["ok"] is False]
    ddp = rows_of(report, "ddp")
    assert ddp["DDP: parameters identical on every rank"]["ok"] is True
    assert ddp["sharded labels == single-process labels"]["raw"] == 1.0
    assert any(r["figure"] == "bf16 vs fp32 training speed" for r in report["rows"])


@pytest.mark.gpu
@pytest.mark.slow
def test_real_sizes_on_the_gpu(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--device", "cuda", "--out", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert all(p["status"] == "ok" for p in report["parts"].values()), res.stdout[-3000:]
    assert report["wall_s"] < 8 * 60


def test_real_size_labeler_models_are_built_on_the_device():
    """The GPU run builds its random Grounding DINO, SAM and SAM 3 directly on the GPU. A
    parameter made by a legacy constructor (Grounding DINO's ``level_embed``) ignores the default
    device: on an H200 the detector then failed with "cuda:0 and cpu". The meta device shows the
    same thing without a GPU."""
    from bench.labeler import build_models
    from bench.labeler_backends import build_sam3

    det, sam = build_models(64, 64, "meta", swin="tiny", sam_vit="vit_b")
    sam3 = build_sam3(336, "meta")
    for loaded in (det, sam, sam3):
        tensors = [*loaded.model.parameters(), *loaded.model.buffers()]
        assert {t.device.type for t in tensors} == {"meta"}, loaded.source


def test_a_killed_part_takes_processes_of_other_sessions_with_it(tmp_path):
    """torchrun starts each rank in a process group of its own: killing the part's group at its
    limit (or when gpu_session.sh's `timeout` stopped bench/gpu.py) left the ranks running, on
    the GPU, through the next step."""
    import signal
    import time

    sys.path.insert(0, str(ROOT))
    from bench.gpu import kill_part

    start = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
    start += "'import time; time.sleep(300)'], start_new_session=True); print(p.pid, flush=True); "
    start += "time.sleep(300)"
    part = subprocess.Popen(
        [sys.executable, "-c", start], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    rank = int(part.stdout.readline())
    try:
        kill_part(part)
        for _ in range(50):  # SIGKILL is asynchronous; a zombie is gone too
            stat = Path(f"/proc/{rank}/stat")
            if not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z":
                break
            time.sleep(0.1)
        else:
            pytest.fail("the part's child in another session is still running")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(rank, signal.SIGKILL)
