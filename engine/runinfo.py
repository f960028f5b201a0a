"""What makes a run reproducible: package versions, machine, git commit, configuration hash.

Every run directory (labeling, fusion, training, evaluation) records :func:`environment` next to
its resolved configuration.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "mass-engine",
    "torch",
    "torchvision",
    "transformers",
    "numpy",
    "opencv-python-headless",
    "pillow",
    "scipy",
    "segment-anything",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The project's git commit (with ``-dirty`` when the tree has changes), or None outside git.

    None too for an installed copy (``pip install``, not ``-e``) whose site-packages lies inside
    some other git repository (a project's ``.venv``): that repository does not track this file,
    and before, its commit (and its ``-dirty``) was recorded as the engine's."""
    here = Path(__file__).resolve()
    root = here.parent.parent
    try:
        tracked = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--error-unmatch", "--", str(here)],
            capture_output=True,
            timeout=5,
        )
        if tracked.returncode != 0:
            return None
        # git's output as UTF-8, not the locale's: ``git status`` names files in their bytes
        # (``core.quotepath false``), which an ASCII locale (``LC_ALL=C`` with UTF-8 mode off) or
        # cp1252 could not decode, and every command that writes a record stopped there
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=5,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=5,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_cores() -> int:
    """CPU cores this process may use: its affinity mask where the OS has one (``taskset``,
    SLURM's ``--cpus-per-task``), fewer where a cgroup's CPU quota allows less (``docker run
    --cpus 2``, a Kubernetes CPU limit: :func:`cgroup_cpu_quota`). Before, a container limited
    to 2 CPUs of a 64-core host trained with 4 loader workers and 60 torch threads, throttled."""
    cores, quota = _affinity_cores(), cgroup_cpu_quota()
    return cores if quota is None else max(1, min(cores, int(quota)))


def _affinity_cores() -> int:
    """CPU cores of this process's affinity mask (all of the machine's outside Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity outside Linux
        return max(1, os.cpu_count() or 1)


def follow_cpu_quota() -> None:
    """Where a cgroup CPU quota allows fewer cores than the affinity mask (``docker run --cpus
    2``, a Kubernetes CPU limit), ``OMP_NUM_THREADS`` set to :func:`cpu_cores`, before torch is
    imported: its intra-op threads, which predict, label and evaluate leave at torch's default,
    follow the affinity mask and not the quota (2 threads under a 1-CPU quota here; 64 on a
    64-core host), and so ran throttled. Nothing where the user set ``OMP_NUM_THREADS``, torch
    is already imported, or there is no quota below the mask (an unconstrained machine)."""
    if "OMP_NUM_THREADS" in os.environ or "torch" in sys.modules:
        return
    if (cores := cpu_cores()) < _affinity_cores():  # a quota below the mask
        os.environ["OMP_NUM_THREADS"] = str(cores)


# What to do about a /dev/shm too small for the loader workers' batches: training's warning
# before it starts (trainer.data.shm_shortfall) and the CLI's line when it ran out
# (engine.cli.common.process_limit, which says where Kubernetes mounts the volume).
SHM_ADVICE = (
    "give it more (docker run --shm-size 8g; Kubernetes: an emptyDir of medium Memory{mounted}), "
    "or pass --workers 0 to load in the training process"
)


def too_many_open_files(e: BaseException) -> bool:
    """Whether ``e`` is this process's open-file limit (``ulimit -n``; EMFILE, or the system's
    table, ENFILE) reached, here or as torch's DataLoader reports it ("Too many open files.
    Communication with the workers is no longer possible. ... set_sharing_strategy ...")."""
    if isinstance(e, OSError):
        return e.errno in (errno.EMFILE, errno.ENFILE)
    return isinstance(e, RuntimeError) and str(e).startswith("Too many open files")


CGROUP_ROOT = Path("/sys/fs/cgroup")  # where the cgroup file systems are mounted (Linux)
PROC_CGROUP = Path("/proc/self/cgroup")  # this process's cgroups


def cgroup_cpu_quota() -> float | None:
    """The CPU quota of this process's cgroup in cores (quota over period: cgroup v2's
    ``cpu.max`` "200000 100000" is 2.0; v1's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``),
    the smallest of its own and its parents'; None where there is none ("max", -1) or no cgroup
    file to read (not Linux). Whole cores count: a 1.5-CPU quota runs 1 thread unthrottled."""
    try:
        lines = PROC_CGROUP.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2: "0::/path"
            mounts, files = [CGROUP_ROOT, CGROUP_ROOT / "unified"], ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: "4:cpu,cpuacct:/path"
            mounts = [CGROUP_ROOT / controllers, CGROUP_ROOT / "cpu"]
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        rel = Path(path.strip().lstrip("/"))
        for mount in mounts:  # the process's cgroup and its parents; a container sees "/"
            for folder in {mount / rel, *(mount / p for p in rel.parents)}:
                if (quota := _read_quota([folder / f for f in files])) is not None:
                    quotas.append(quota)
    return min(quotas, default=None)


def _read_quota(files: list[Path]) -> float | None:
    """Cores from a ``cpu.max`` file (``[quota, period]``) or v1's quota and period files."""
    try:
        words = " ".join(f.read_text(encoding="ascii") for f in files).split()
        quota, period = words[0], words[1]
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def cpu_model() -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` elsewhere), or
    None when neither says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


# ``=0`` turns off training's malloc tuning (trainer.allocator); here, where it is recorded,
# because this layer is below trainer (README, "Layout")
MALLOC_OPT_OUT = "ENGINE_TUNE_MALLOC"

# Environment variables that change which kernels torch runs, how many threads, or how memory
# is allocated: a run's digits or speed depend on them (recorded by ``environment()``).
RECORDED_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "LD_PRELOAD",
    MALLOC_OPT_OUT,  # training's malloc tuning turned off (trainer.allocator)
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTORCH_CUDA_ALLOC_CONF",
)


def recorded_env() -> dict[str, str]:
    """The variables of :data:`RECORDED_ENV` and glibc's ``MALLOC_*`` tunables that are set."""
    return {
        k: v for k, v in sorted(os.environ.items()) if k in RECORDED_ENV or k.startswith("MALLOC_")
    }


def versions() -> dict[str, Any]:
    """The code that made an output: Python, the git commit and the package versions, without
    the time, host or command line, so that an output promised to be the same bytes on a rerun
    (``engine synth``'s ``synth.json``) stays so on the same machine."""
    return {
        "python": sys.version.split()[0],
        "git_commit": git_commit(),
        "packages": package_versions(),
    }


def environment(torch_used: bool | None = None) -> dict[str, Any]:
    """Versions and machine facts to store in a run directory.

    ``torch_used``: whether the command computed anything with torch; its kernel set, threads,
    CUDA version and GPUs are recorded then only (importing torch where it is not yet). None
    (a library caller's default): where torch is loaded. Before the forty-eighth round every
    record decided by that, so the same ``engine report`` written from a notebook that had
    imported torch recorded torch's facts (``engine info``: "AVX2 kernels, 2 torch threads")
    and a fresh ``engine report`` none; the commands that never use torch (report, compare,
    review, annotate, fuse; evaluate unless ``--device`` counts on torch) pass False.

    ``cwd`` is where the command ran: configurations record paths as typed (``runs/pred``), and
    without it a record read elsewhere named no file (before the forty-second round).

    The CPU matters for reproducing a CPU run: torch picks its kernels by the instruction set
    (``cpu_capability``: AVX2, AVX512, ...), and the same run gives other digits on another set
    (docs/rounds.md, ninth round)."""
    env: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": cpu_cores(),  # usable cores: what training sizes its processes by
        "argv": sys.argv,
        # where argv's relative paths (and a config's paths as given) start from
        "cwd": _cwd(),
        "env": recorded_env(),
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    if torch_used:
        import torch
    else:
        torch = sys.modules.get("torch") if torch_used is None else None
    if torch is not None:
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.version.cuda
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return env


def config_cwd(run: str | os.PathLike) -> str | None:
    """The folder the command that last wrote a training run's ``config.json`` and
    ``config.yaml`` ran in, from which their relative paths (``data``, ``out``, ``init``) were
    typed: the last resume's (``resumes.jsonl``), else the first start's
    (``environment.json``); None where neither records one."""
    from annotations.fileio import read_json, read_jsonl, record_cwd

    run = Path(run)
    try:
        resumes = read_jsonl(run / "resumes.jsonl")
    except FileNotFoundError:
        resumes = []
    except (OSError, ValueError):  # a later resume may have run elsewhere: not the first start's
        return None
    if resumes and isinstance(resumes[-1], dict) and resumes[-1].get("environment") is not None:
        return record_cwd(resumes[-1])  # a resume line holds its environment as a record does
    try:
        env = read_json(run / "environment.json", "environment record")
    except (OSError, ValueError):
        return None
    return record_cwd({"environment": env})


def _cwd() -> str | None:
    """The working directory, or None where it was removed under the process."""
    try:
        return os.getcwd()
    except OSError:
        return None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (``hashlib.file_digest`` does this
    from Python 3.11; the project supports 3.10)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: Any) -> str:
    """A short stable hash of a JSON-serialisable configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# the packages whose warnings a command's record keeps, and the console shows
# (engine.cli.common.LOGGED_PACKAGES)
KEPT_PACKAGES = ("annotations", "engine", "labeler", "trainer")


EARLIER_CALLS = 10  # the earlier calls whose warnings a record keeps, the latest ones
EARLIER_SHOWN = 20  # the warnings kept of each, the first ones (then how many more)


def warnings_entry(said: list[str], earlier: Any = None) -> dict[str, Any]:
    """A record's ``warnings`` entry: what the command said (:func:`kept_warnings`); no key
    when it said nothing, so a record of a quiet run is as before.

    ``earlier``: the record this call writes over, where what the calls before made is still
    on disk beside what this one makes (a resumed label run or prediction, a fusion of another
    split): its warnings are kept too, in ``earlier_warnings`` (:func:`earlier_calls`). Before
    the forty-fifth round the latest call's overwrote them: a resumed run under nohup kept no
    trace of what its first call warned about."""
    entry: dict[str, Any] = {"warnings": list(said)} if said else {}
    calls = earlier_calls(earlier)
    if calls and calls[-1]["warnings"] == _cut(said):  # said again now: once, as the latest
        calls.pop()
    if calls:
        entry["earlier_warnings"] = calls
    return entry


def earlier_calls(record: Any) -> list[dict[str, Any]]:
    """The warnings of the calls that wrote ``record`` and those before it (its
    ``earlier_warnings``), oldest first, each ``{"time", "warnings"}`` with the time its call
    started (its ``environment``'s); the latest :data:`EARLIER_CALLS` calls that warned, the
    first :data:`EARLIER_SHOWN` warnings of each: a record stays small over many resumes."""
    if not isinstance(record, dict):
        return []
    calls = kept_calls(record)
    said = [str(w) for w in record.get("warnings") or []]
    if said:
        env = record.get("environment")
        calls.append(
            {"time": env.get("time") if isinstance(env, dict) else None, "warnings": _cut(said)}
        )
    return calls[-EARLIER_CALLS:]


def kept_calls(record: Any) -> list[dict[str, Any]]:
    """The earlier calls' warnings ``record`` keeps (its ``earlier_warnings``, each
    ``{"time", "warnings"}``), oldest first, without the latest call's own."""
    if not isinstance(record, dict):
        return []
    return [
        c
        for c in record.get("earlier_warnings") or []
        if isinstance(c, dict) and isinstance(c.get("warnings"), list)
    ]


def _cut(said: list[str]) -> list[str]:
    """The first :data:`EARLIER_SHOWN` warnings of a call, then how many more."""
    more = len(said) - EARLIER_SHOWN
    return [str(w) for w in said[:EARLIER_SHOWN]] + ([f"... and {more:,} more"] if more > 0 else [])


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not kept
            self.handleError(record)


@contextlib.contextmanager
def kept_warnings(packages: tuple[str, ...] = KEPT_PACKAGES) -> Iterator[list[str]]:
    """The warnings ``packages`` log while the block runs, as the list yielded (each message's
    text, as the console's ``warning: ...`` line shows it): for a command to keep in its own
    record (``fuse.json``'s ``warnings``), since a run started under nohup or a scheduler has
    no console left to read them from."""
    handler = _Kept()
    loggers = [logging.getLogger(name) for name in packages]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def warned_call(fn: Any, job: Any) -> tuple[Any, list[str]]:
    """``(fn(job), the warnings it logged)``, for a worker process to send back with its
    result: a spawned worker has neither the console's handler nor the caller's
    :func:`kept_warnings`, so what it said was printed bare and left out of the command's record
    (before the forty-fifth round). The caller logs them again (:func:`say_again`)."""
    with kept_warnings() as said:
        return fn(job), said


def say_again(said: list[str], logger: logging.Logger) -> None:
    """Log the warnings a worker sent back (:func:`warned_call`) here, where the console shows
    them and :func:`kept_warnings` keeps them, as if the caller had said them."""
    for message in said:
        logger.warning("%s", message)


# beside a training run's last.pt: the step it holds, read without torch (engine info)
SAVED_STEP = "saved_step.json"

# The records engine train writes in its run's folder (trainer/train/__init__.py's docstring lists
# them): given where a checkpoint is wanted, trainer.checkpoint.load_checkpoint names last.pt.
TRAIN_RUN_RECORDS = (
    "config.yaml",
    "config.json",
    "environment.json",
    "resumes.jsonl",
    "init.json",
    "metrics.jsonl",
    "curves.png",
    "skipped.jsonl",
    SAVED_STEP,
)


def record_saved_step(checkpoint: str | os.PathLike, step: int) -> Path:
    """Write, atomically and after ``checkpoint`` (a run's ``last.pt``) is in place, the step it
    holds with the file's size and modification time beside it (:data:`SAVED_STEP`): ``engine
    info`` names the step a ``--resume`` goes on from without loading torch. A process killed
    between the two writes leaves a record of the checkpoint before, whose size or time no
    longer match: :func:`saved_step` then knows none."""
    from annotations.fileio import atomic_write_json

    checkpoint = Path(checkpoint)
    st = checkpoint.stat()
    record = {"file": checkpoint.name, "step": int(step), "bytes": st.st_size}
    record["mtime_ns"] = st.st_mtime_ns
    return atomic_write_json(checkpoint.parent / SAVED_STEP, record)


def saved_step(run: str | os.PathLike) -> int | None:
    """The step of a training run's ``last.pt`` as :func:`record_saved_step` recorded it; None
    where there is no record, it cannot be read, or it is not of the ``last.pt`` there now (a
    run before the fiftieth round, a kill between the checkpoint and its record, a copy that
    did not keep the times)."""
    run = Path(run)
    try:
        record = json.loads((run / SAVED_STEP).read_text(encoding="utf-8"))
        st = (run / record["file"]).stat()
        same = (record["bytes"], record["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
        step = record["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = same and record["file"] == "last.pt" and isinstance(step, int) and step >= 0
    return step if ok else None
