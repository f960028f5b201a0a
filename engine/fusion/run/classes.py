"""The fused taxonomy and its rules: the new classes after the dataset's own, each checked
(one run per class, an id left for it, its parent a class of the dataset; a class fused into
the dataset already named with where it came from and the one call that fuses it anew), the
rules by class id (``--parent``, ``--priority``), and the new classes a fused dataset's folder
holds (:func:`check_same_classes`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from annotations.fileio import FUSE_RECORD, fused_input, fused_source
from annotations.taxonomy import IGNORE_ID, Taxonomy, class_key
from engine.datasets import FUSION_CHAIN_LIMIT, DatasetSpec
from engine.fusion.pseudo import PseudoRun
from engine.fusion.rules import FusionRules
from engine.fusion.run.config import FuseConfig, FusePlan
from engine.text import counted, few


def _fused_before(spec: DatasetSpec, run: PseudoRun) -> str:
    """For the error of a class fused into a dataset that has it: where it came from and the
    one call that fuses it anew, when the dataset was fused (``fuse.json``) with the class
    from a label run: the dataset the first fusion read, and every run of the chain in its
    order (the class's new run in its old one's place, so no id moves). Empty otherwise."""
    chain: list[tuple[str, str, Path]] = []  # (class, run path, its fuse.json), in id order
    record, data, where = spec.fuse_record(), None, spec.root / FUSE_RECORD
    # Car fused onto runs/fused/bicycle: two records, read back to front
    for _ in range(FUSION_CHAIN_LIMIT):
        inputs = (record or {}).get("inputs")
        if not isinstance(inputs, dict) or not isinstance(inputs.get("pseudo"), list):
            break
        pseudo = [r for r in inputs["pseudo"] if isinstance(r, dict)]
        # each run where it is now (beside the fused dataset in a moved or copied project)
        added = [
            (str(r.get("class")), str(fused_input(record, where.parent, r.get("path"))), where)
            for r in pseudo
        ]
        # the dataset it was fused from where it is now (beside it in a moved or copied
        # project; before the forty-sixth round the absolute path recorded, the original's)
        chain, data = added + chain, fused_source(record, where.parent)
        if data is None:
            break
        where = data / FUSE_RECORD
        # the dataset it was fused from, itself fused? (a record that is no JSON object: not)
        record = DatasetSpec(root=data).fuse_record()
        if record is None:
            break
    key = class_key(run.class_name)
    before = [(path, where) for name, path, where in chain if class_key(name) == key]
    if not before or data is None:
        return ""
    (path, where), again = before[0], f"engine fuse --data {shlex.quote(str(data))} --out NEW"
    for name, other, _ in chain:  # quoted: a line to paste
        again += f" --pseudo {shlex.quote(str(run.path if class_key(name) == key else other))}"
    if Path(path).resolve() == run.path.resolve():
        return (
            f": it was fused from this run already ({where}), so train on "
            f"{spec.root} as it is; to fuse it again with other settings: {again}"
        )
    return (
        f": it was fused from {path} ({where}); to fuse this run in its "
        f"place, fuse every new class anew onto the dataset they were fused from: {again}"
    )


def _resolve_taxonomy(spec: DatasetSpec, runs: list[PseudoRun], data: Path) -> Taxonomy:
    base = spec.taxonomy
    seen: dict[str, PseudoRun] = {}
    for run in runs:
        key = class_key(run.class_name)
        if key in seen and seen[key].path.resolve() == run.path.resolve():  # pasted twice
            raise ValueError(f"{run.path}: given twice (--pseudo); give each run once")
        if key in seen:
            raise ValueError(
                f"{seen[key].run_json} and {run.run_json}: two pseudo runs for class "
                f"{run.class_name!r}; give one run per new class"
            )
        seen[key] = run
        if run.class_name in base:
            raise ValueError(
                f"{run.run_json}: class {run.class_name!r} is already in the taxonomy of "
                f"dataset {data} ({base.listed()}); a pseudo run must add a new class"
                + _fused_before(spec, run)
            )
    room = IGNORE_ID - base.num_classes  # new ids up to 254; 255 is ignore in uint8 labels
    if len(runs) > room:
        raise ValueError(
            f"{runs[room].run_json}: no class id left for class {runs[room].class_name!r}: "
            f"dataset {data} has {counted(base.num_classes, 'class', 'classes')}, so uint8 "
            f"label maps (ids 0..{IGNORE_ID - 1}, {IGNORE_ID} is ignore) have room for "
            f"{counted(room, 'new class', 'new classes')}, not {len(runs)}"
        )
    fused = base
    for run in runs:
        if run.parent_name not in base:
            raise ValueError(
                f"{run.run_json}: parent {run.parent_name!r} of class {run.class_name!r} is not "
                f"a class of dataset {data} ({base.listed()})"
            )
        used = {c.color for c in fused}
        color = run.color if run.color not in used else None
        fused = fused.with_new_class(run.class_name, parent=run.parent_name, color=color)
    return fused


def _resolve_rules(config: FuseConfig, taxonomy: Taxonomy, runs: list[PseudoRun], n: int):
    new_ids = [taxonomy.id_of(r.class_name) for r in runs]
    base_names = taxonomy.names[:n]
    parents: dict[int, tuple[int, ...]] = {}
    for c in new_ids:
        if config.parents is None:
            parents[c] = (taxonomy[c].parent,)
            continue
        ids = []
        for name in config.parents:
            if name not in taxonomy or taxonomy.id_of(name) >= n:
                raise ValueError(
                    f"--parent {name!r}: not a precise class of the dataset; "
                    f"known: {few(base_names, 20, total=True)}"
                )
            ids.append(taxonomy.id_of(name))
        parents[c] = tuple(dict.fromkeys(ids))
    priority = []
    new_names = [taxonomy[c].name for c in new_ids]
    for name in config.priority:
        if name not in taxonomy or taxonomy.id_of(name) not in new_ids:
            raise ValueError(
                f"--priority {name!r}: not a new class of these pseudo runs; "
                f"new classes: {few(new_names, 20, total=True)}"
            )
        if taxonomy.id_of(name) in priority:  # named, not by id as FusionRules would
            raise ValueError(
                f"--priority lists {taxonomy.get(name).name} twice: {', '.join(config.priority)}"
            )
        priority.append(taxonomy.id_of(name))
    return FusionRules(
        parents=parents,
        parent_constraint=config.parent_constraint,
        uncertain=config.uncertain,
        min_coverage=config.min_coverage,
        priority=tuple(priority),
    )


def new_class_names(taxonomy: Taxonomy) -> list[str]:
    """The classes carved out of a parent (the new classes), in id order."""
    return [c.name for c in taxonomy if c.parent is not None]


def fused_classes(out: Path) -> list[str] | None:
    """The new classes the fused dataset in ``out`` holds (its ``taxonomy.json``), in id order;
    None when there is none yet, or its record is unreadable (fusion rewrites it)."""
    path = out / "taxonomy.json"
    if not path.is_file():
        return None
    try:
        return new_class_names(Taxonomy.load(path))
    except (OSError, ValueError):
        return None


def check_same_classes(out: Path, plan: FusePlan, force: bool) -> None:
    """A fused dataset's folder holds one set of new classes: fusing others into it (a changed
    setting re-fuses, but other classes are another dataset, with other class ids) is a
    ``ValueError`` naming the classes it holds, unless ``force``. Training runs and predictions
    made from it read its labels with its taxonomy."""
    held = None if force else fused_classes(out)
    wanted = new_class_names(plan.taxonomy)
    if held is not None and held != wanted:
        raise ValueError(
            f"{out}: a fused dataset of {' + '.join(held) or 'no new class'}; fusing "
            f"{' + '.join(wanted)} here would replace its labels and class ids: give another "
            "--out, or --force to replace it"
        )
