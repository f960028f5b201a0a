"""The backend the labeling runner drives (``engine label --backend simulated``): the true
masks of each image with the simulated errors drawn on them, no model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import FUSE_RECORD
from annotations.instances import Instances
from annotations.taxonomy import class_folder
from labeler.crops import CroppedInstances
from labeler.simulated.draws import image_rng, simulate_cropped
from labeler.simulated.options import BACKEND_NAME, SimulationConfig
from labeler.simulated.truth import load_truth, truth_paths


# -- the backend the labeling runner drives ----------------------------------------------------
class SimulatedBackend:
    """``engine label --backend simulated``: no model; true masks of the dataset plus simulated
    Grounded-SAM errors. Options come from ``LabelConfig.extra`` (keys of
    :class:`SimulationConfig`); they are hashed into the run's configuration like any setting.
    """

    name = BACKEND_NAME
    uses_torch = False  # run.json records no torch facts (LabelBackend)

    def __init__(self, config: Any, class_id: int) -> None:
        from engine.datasets import load_spec
        from labeler.backends import refuse_unread

        # what only a model reads (engine label refuses them as options)
        models = ("detector", "segmenter", "detector_revision", "segmenter_revision", "model")
        refuse_unread(config, BACKEND_NAME, (*models, "model_revision"))
        self.config = config
        self.class_id = int(class_id)
        self.class_name = config.cls.name
        self.sim = SimulationConfig.from_dict(dict(config.extra or {}))
        self.spec = load_spec(config.data)
        self.root = self.spec.root
        self.taxonomy = self.spec.taxonomy
        self._listed: dict[Path, dict[str, Path]] = {}  # label folders listed by _label_files

    def identity(self) -> dict[str, Any]:
        return {"backend": BACKEND_NAME, "simulation": dataclasses.asdict(self.sim)}

    def load(self) -> dict[str, Any]:
        """The run's record of what labelled; ``FileNotFoundError`` up front when the dataset
        has no truth of the class at all (else every image would fail alone, saying so)."""
        # the folders truth_paths reads: 'Straßenbahn/' for --class STRASSENBAHN, and 'Vélo/'
        # as macOS writes it (e + U+0301) for --class Vélo, were refused here as no truth
        if not any(
            (base / class_folder(base, self.class_name)).is_dir()
            for base in (self.root / "new_class_instances", self.root / "new_classes")
        ):
            fused = (self.root / FUSE_RECORD).is_file()
            raise FileNotFoundError(
                f"{self.root}: the simulated labeler needs the true masks of "
                f"{self.class_name!r} (new_class_instances/<class>/ or new_classes/<class>/, as "
                "engine synth writes), and this dataset has none"
                + ("; it is a fused dataset: label its source dataset" if fused else "")
            )
        return {
            "backend": BACKEND_NAME,
            "note": "SIMULATED pseudo labels: made from the dataset's true masks with simulated "
            "Grounded-SAM errors; no detector or segmenter was run",
            "simulation": dataclasses.asdict(self.sim),
            "truth": str(self.root / "new_class_instances"),
        }

    def _label_files(self, folder: Path) -> dict[str, Path]:
        """``stem -> path`` of the label PNGs in ``folder``, whatever the case of their suffix
        (``a.PNG``, which the dataset lists and the labeler took for no label, so that its false
        positives were not kept to the parent class), listed once per folder."""
        if folder not in self._listed:  # as the dataset lists them (a spec's label_suffix)
            self._listed[folder] = self.spec.list_labels(folder) if folder.is_dir() else {}
        return self._listed[folder]

    def _others(self, split: str, stem: str, shape: tuple[int, int]) -> np.ndarray | None:
        """Pixels of the parent class (Others) in the dataset's label, when there is one, where
        the false positives land: read where the dataset's spec puts labels (a hard-coded
        ``annotations/`` missed a spec's own folder), a colour-coded one through the taxonomy's
        palette (it failed the image). A single-channel label is read as before, unchecked:
        only its parent pixels are used, so the simulated errors and the images they fail are
        those of the documented rates."""
        from PIL import Image

        from annotations.labelmap import PIL_ERRORS, read_label

        folder = self.spec.label_dir(split)
        path = None if folder is None else folder / f"{stem}{self.spec.label_suffix or '.png'}"
        if path is not None and not path.is_file():  # a.PNG: datasets list any case
            path = self._label_files(folder).get(stem)
        if path is None:
            return None
        try:  # the header says which: one decode (trying unchecked first decoded an RGB twice)
            with Image.open(path) as img:
                colour = img.mode in ("RGB", "RGBA")
        except PIL_ERRORS:  # a decompression bomb too: not an OSError
            colour = False  # unreadable: read_label names the file and the problem
        label = read_label(path, self.taxonomy if colour else None)
        if label.shape != shape:
            return None
        parent = (
            self.taxonomy.id_of(self.config.cls.parent)
            if self.config.cls.parent in self.taxonomy
            else 0
        )
        return label == parent

    def _class_rules(
        self, inst: Instances | CroppedInstances, probs: np.ndarray | None = None
    ) -> tuple[Instances | CroppedInstances, np.ndarray | None]:
        """The class spec's ``min_area`` and ``max_instances`` (``--min-area``,
        ``--max-instances``), as the model backends apply them after deduplication: smaller
        instances dropped, then the best-scored ones kept. The defaults (0, 100) keep every
        simulated instance, so the documented error rates stand."""
        cls = self.config.cls
        keep = np.flatnonzero(inst.areas >= max(cls.min_area, 1))
        if 0 < cls.max_instances < keep.size:
            best = np.argsort(-inst.scores[keep], kind="stable")[: cls.max_instances]
            keep = np.sort(keep[best])
        if keep.size == len(inst):
            return inst, probs
        return inst[keep], None if probs is None else probs[keep]  # cropped: probs inside

    def label(self, batch: list[Any]) -> list[Any]:
        import time

        from labeler.backends import BackendOutput

        outputs = []
        for item in batch:
            t0 = time.perf_counter()
            ids = load_truth(self.root, self.class_name, item.split, item.stem)
            h, w = item.image.shape[:2]
            if ids.shape != (h, w):
                raise ValueError(
                    f"{truth_paths(self.root, self.class_name, item.split, item.stem)[0]}: true "
                    f"mask is {ids.shape[1]}x{ids.shape[0]} but the image is {w}x{h}"
                )
            # the instances inside their windows, as the writer takes them (same files):
            # neither full-size masks and probabilities per instance (60 MB each at 4032x3024)
            # nor a batch of them waiting in the writers' queue
            inst = simulate_cropped(
                ids,
                others=self._others(item.split, item.stem, (h, w)),
                config=self.sim,
                rng=image_rng(self.sim.seed, item.split, item.stem),
                class_id=self.class_id,
                prompt=f"{BACKEND_NAME}:{self.class_name.lower()}",
            )
            inst, _ = self._class_rules(inst)
            outputs.append(
                BackendOutput(instances=inst, timings={"simulate": time.perf_counter() - t0})
            )
        return outputs
