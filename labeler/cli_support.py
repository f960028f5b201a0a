"""Glue for ``engine label``: command-line strings -> :class:`LabelConfig`, summary -> rich table."""

from __future__ import annotations

from engine.cli.common import interrupted, stderr, stdout
from labeler.backends import NOT_USED
from labeler.config import (
    DEFAULT_DETECTOR,
    DEFAULT_SEGMENTER,
    ClassSpec,
    LabelConfig,
    load_class_spec,
    parse_grid,
    parse_shard,
)
from labeler.models import failure_advice, looks_like_path
from labeler.run import STAGES, LabelSummary

# The labeling options' defaults, to tell an option given on the command line from its default.
_DEFAULTS = LabelConfig(data="", cls=ClassSpec(name="-"))


def parse_band(text: str) -> tuple[float, float]:
    """``"0.15,0.25"`` -> ``(0.15, 0.25)``."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--uncertain must look like 0.15,0.25 (lo,hi), got {text!r}") from None
    if not (0 <= lo <= 1 and 0 <= hi <= 1):
        raise ValueError(f"--uncertain values must be in 0..1, got {text!r}")
    if lo > hi:  # an inverted band marks nothing uncertain: a typo rather than a choice
        raise ValueError(
            f"--uncertain is the band lo,hi with lo <= hi (equal: no band), got {text!r}"
        )
    return lo, hi


def parse_backend_options(items: list[str] | None) -> dict:
    """``["miss_max=0.5", "fill_holes=false"]`` -> ``{"miss_max": 0.5, "fill_holes": False}``
    (values parsed as YAML scalars, as a config file's: ``miss_max=1e-1`` is 0.1, where
    ``yaml.safe_load`` gave the string '1e-1' and the run a traceback)."""
    import yaml

    from annotations.fileio import yaml_scalar

    extra: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--backend-option must look like KEY=VALUE, got {item!r}")
        if not value.strip():  # YAML reads it as null: "seed must be a whole number, got None"
            raise ValueError(f"--backend-option {item!r}: no value after '='")
        try:
            extra[key.strip()] = yaml_scalar(value)
        except yaml.YAMLError:
            raise ValueError(f"--backend-option {item!r}: cannot parse the value") from None
    return extra


def build_label_config(
    *,
    class_name: str,
    data: str,
    split: str = "",
    out: str = "",
    prompt: list[str] | None = None,
    negative: list[str] | None = None,
    spec: str = "",
    detector: str = "",
    segmenter: str = "",
    backend: str = "grounded-sam",
    model: str = "",
    refine: str = "",
    box_threshold: float | None = None,
    text_threshold: float | None = None,
    min_area: int | None = None,
    max_instances: int | None = None,
    uncertain: str = "0.15,0.25",
    batch_size: int = 4,
    workers: int = 2,
    device: str = "auto",
    precision: str = "auto",
    tiles: str = "1x1",
    overlap: float = 0.2,
    shard: str = "",
    force: bool = False,
    progress: bool = True,
    backend_option: list[str] | None = None,
    max_boxes: int = 100,
    writers: int = 2,
    writer_queue_mb: int = 1024,
    detector_revision: str = "",
    segmenter_revision: str = "",
    model_revision: str = "",
) -> LabelConfig:
    """Command-line values to a config; options given on the command line win over ``--spec``."""
    overrides = {
        "prompts": tuple(prompt or ()),
        "negatives": tuple(negative or ()),
        "box_threshold": box_threshold,
        "text_threshold": text_threshold,
        "min_area": min_area,
        "max_instances": max_instances,
    }
    grid = parse_grid(tiles)
    if backend == "simulated":
        # What only a model reads: refused rather than recorded in run.json (and its config
        # hash) unused. Device and precision still serve --refine's segmenter.
        given = [
            option
            for option, used in (
                ("--detector", detector),
                ("--segmenter", segmenter),
                ("--box-threshold", box_threshold is not None),
                ("--text-threshold", text_threshold is not None),
                ("--prompt", prompt),
                ("--negative", negative),
                ("--tiles", grid != _DEFAULTS.tiles),
                ("--overlap", overlap != _DEFAULTS.tile_overlap),
                ("--max-boxes", max_boxes != _DEFAULTS.max_boxes),
                ("--precision", precision != _DEFAULTS.precision and not refine),
                ("--device", device != _DEFAULTS.device and not refine),
            )
            if used
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)}: --backend simulated runs no detector or segmenter (only "
                "--refine's); its error rates are set with --backend-option KEY=VALUE"
            )
    elif grid == (1, 1) and overlap != _DEFAULTS.tile_overlap:
        raise ValueError(
            "--overlap is the overlap between --tiles RxC tiles: give --tiles (1x1 has none)"
        )
    if model and backend != "sam3":
        takes = "no model" if backend == "simulated" else "--detector and --segmenter"
        raise ValueError(
            f"--model is the SAM 3 checkpoint of --backend sam3; --backend {backend} takes {takes}"
        )
    if backend != "grounded-sam" and (detector_revision or segmenter_revision):
        raise ValueError(
            "--detector-revision and --segmenter-revision are for --backend grounded-sam"
            + (" (sam3: --model-revision)" if backend == "sam3" else "")
        )
    if backend_option and backend in ("grounded-sam", "sam3"):  # it read none: ignored
        raise ValueError(
            f"--backend-option {backend_option[0]}: --backend {backend} takes no backend options "
            "(they set --backend simulated's error rates); its settings are options of their "
            "own (--box-threshold, --tiles, ...: engine label --help)"
        )
    if model_revision and backend != "sam3":
        raise ValueError(f"--model-revision is for --backend sam3 (its --model), not {backend}")
    for flag, source, revision in (
        ("detector", detector, detector_revision),
        ("segmenter", segmenter, segmenter_revision),
        ("model", model, model_revision),
    ):
        # a local folder or file is read as it is: the revision pinned nothing, yet run.json
        # recorded it and its change relabelled every image
        if revision and source and looks_like_path(source):
            raise ValueError(
                f"--{flag}-revision {revision}: --{flag} {source} is a local path, read as it is "
                f"(a revision picks a commit of a hub id): leave --{flag}-revision out"
            )
    if backend == "sam3" and text_threshold is not None:
        # SAM 3 scores an instance once (detection x presence): the threshold on that is
        # --box-threshold. Taken, it was recorded in run.json and its config hash unused, and a
        # changed one relabelled every image for nothing.
        raise ValueError(
            "--text-threshold: --backend sam3 has no text threshold (its one instance score is "
            "thresholded by --box-threshold)"
        )
    if backend == "sam3" and (detector or segmenter):
        raise ValueError(
            "--backend sam3 takes its checkpoint with --model (no --detector / --segmenter; "
            "use --refine SEGMENTER to re-segment its instances with SAM)"
        )
    for key in ("min_area", "max_instances"):  # typed: the option named, not a --spec file
        if (value := overrides[key]) is not None and value < 0:
            option = "--" + key.replace("_", "-")
            raise ValueError(f"class {class_name!r}: {key} must be >= 0 ({option}), got {value}")
    if spec:
        cls = load_class_spec(spec, class_name, **overrides)
        _check_parent(spec, cls, data)
    else:
        cls = ClassSpec(name=class_name, **{k: v for k, v in overrides.items() if v is not None})
        _check_parent(None, cls, data)
    return LabelConfig(
        data=data,
        cls=cls,
        out=out,
        splits=tuple(s.strip() for s in split.split(",") if s.strip()),
        backend=backend,
        detector=detector or (NOT_USED.get(backend) or DEFAULT_DETECTOR),
        segmenter=segmenter or (NOT_USED.get(backend) or DEFAULT_SEGMENTER),
        model=model,
        detector_revision=detector_revision or None,
        segmenter_revision=segmenter_revision or None,
        model_revision=model_revision or None,
        refine=refine,
        tiles=grid,
        tile_overlap=overlap,
        uncertain=parse_band(uncertain),
        batch_size=batch_size,
        workers=workers,
        writers=writers,
        writer_queue_mb=writer_queue_mb,
        max_boxes=max_boxes,
        device=device,
        precision=precision,
        shard=parse_shard(shard) if shard else None,
        force=force,
        progress=progress,
        extra=parse_backend_options(backend_option),
    )


def _check_parent(spec: str | None, cls: ClassSpec, data: str) -> None:
    """The spec file's ``parent`` must be a class of the dataset: a ``ValueError`` naming the
    file, the class and the dataset's classes (it was ``unknown class 'Vehicles'``, naming
    neither). Without a spec file the parent is the default, Others, which a dataset of its own
    classes may lack: the error says where to set it. A dataset that cannot be opened is left
    to the run, which names its problem."""
    from engine.datasets import load_spec

    try:
        taxonomy = load_spec(data).taxonomy
    except (OSError, ValueError):
        return
    if cls.parent not in taxonomy and spec is None:
        raise ValueError(
            f"dataset {data}: class {cls.name!r}: its parent is {cls.parent!r} by default, which "
            f"is not a class of the dataset ({taxonomy.listed()}); give the parent in a --spec "
            f"file ({cls.name}: {{parent: CLASS}})"
        )
    if cls.parent not in taxonomy:
        raise ValueError(
            f"{spec}: class {cls.name!r}: parent {cls.parent!r} is not a class of dataset "
            f"{data} ({taxonomy.listed()}){taxonomy.release_hint(cls.parent)}"
        )


def print_label_summary(summary: LabelSummary, backend: str | None = None) -> None:
    """The end-of-run table on stdout, failures listed on stderr."""
    from rich.table import Table
    from rich.text import Text

    out, err = stdout, stderr  # the command line's consoles: any stream encoding, no markup
    simulated = (
        " [SIMULATED labeler: pseudo labels from true masks]" if backend == "simulated" else ""
    )
    table = Table(
        title=f"label run {summary.out_dir} (shard {summary.shard[0]}/{summary.shard[1]}){simulated}"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("images in shard", summary.images),
        ("already done (skipped)", summary.skipped),
        ("labelled now", summary.labelled),
        ("instances", summary.instances),
        ("images with none", summary.without_instances),
        ("failures", len(summary.failed)),
        ("wall time", f"{summary.wall_seconds:.1f} s"),
        ("of which loading models", f"{summary.load_seconds:.1f} s"),
    ]
    n = max(summary.labelled, 1)
    # The stages this backend ran (the simulated one has "simulate" instead of detect/segment).
    stages = [s for s in STAGES if s in summary.stage_seconds]
    stages += [s for s in summary.stage_seconds if s not in STAGES]
    for stage in stages:
        rows.append((f"{stage} (per image)", f"{summary.stage_seconds.get(stage, 0.0) / n:.3f} s"))
    labelling = summary.wall_seconds - summary.load_seconds
    if summary.labelled and labelling > 0:  # the rate a longer run keeps up
        rows.append(("throughput (after loading)", f"{summary.labelled / labelling:.2f} img/s"))
    for k, v in rows:
        table.add_row(k, str(v))
    out.print(table, soft_wrap=True)  # its title (the run's path) whole, as engine info's
    for split, stem, error in summary.failed[:20]:
        err.print(Text.assemble(("failed", "red"), f" {split}/{stem}: {error}"))
    if len(summary.failed) > 20:
        manifest = summary.out_dir / "manifest.jsonl"  # the run's, not one in the working dir
        err.print(
            f"... and {len(summary.failed) - 20} more failures (see {manifest})", soft_wrap=True
        )
    for line in failure_advice(len(summary.failed), summary.not_retryable, summary.cannot):
        err.print(line, soft_wrap=True)
    if summary.interrupted:
        err.print(f"{interrupted()[0]}: run the same command again to resume")
