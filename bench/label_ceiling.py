"""What the labels allow at the model's mask resolution: a demo's fused labels and annotations
read at 1/f of the image (every class's one-hot map box-averaged by f, upsampled bilinearly,
argmax, as MaSSFormer's inference decodes its H/2 masks), scored like `engine report`.

    python bench/label_ceiling.py demo_out            # f = 2, the model's mask resolution

"fused labels at 1/f" is what a model that learnt its fused labels exactly would score; the
annotation's row is the architecture's bound (docs/rounds.md, second and fourteenth rounds).
Prints one table per new class and writes OUT/label_ceiling.json (OUT defaults to the demo
folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations.fileio import atomic_write_json  # noqa: E402
from annotations.labelmap import IGNORE, read_label  # noqa: E402
from annotations.subset import Subset, read_subset  # noqa: E402
from annotations.taxonomy import Taxonomy  # noqa: E402
from engine.metrics.binary import ClassScorer  # noqa: E402
from engine.outputs import find_png  # noqa: E402
from engine.report import round_score  # noqa: E402
from engine.text import METRICS, format_score  # noqa: E402
from trainer.inference import upsample_argmax  # noqa: E402


def read_at(label: np.ndarray, factor: int, num_classes: int) -> np.ndarray:
    """``label`` (H, W) as a model with masks at 1/``factor`` of it would reproduce it at best by
    averaging: one-hot classes box-averaged by ``factor`` (edge rows and columns padded by
    replication), upsampled bilinearly to (H, W), argmax (ties to the lower id). Ignored (255)
    pixels take the nearest known label first. ``factor`` 1 returns a copy of ``label``."""
    if factor == 1:
        return label.copy()
    unknown = label == IGNORE
    if unknown.all():
        raise ValueError("label has no known pixel")
    if unknown.any():
        idx = ndimage.distance_transform_edt(unknown, return_distances=False, return_indices=True)
        label = label[tuple(idx)]
    h, w = label.shape
    t = torch.from_numpy(label.astype(np.int64))
    onehot = F.one_hot(t, num_classes).permute(2, 0, 1)[None].float()
    onehot = F.pad(onehot, (0, -w % factor, 0, -h % factor), mode="replicate")
    return upsample_argmax(F.avg_pool2d(onehot, factor), (h, w))


def score_class(demo: Path, subset: Subset, factor: int) -> list[dict]:
    """The rows of one annotated subset: pseudo and fused labels as `engine report` scores
    them, then the fused labels and the annotation read at 1/``factor``."""
    fused = demo / "fused"
    taxonomy = Taxonomy.load(fused / "taxonomy.json")
    cid = taxonomy.id_of(subset.class_name)
    k = taxonomy.num_classes
    pseudo_dir = demo / "label" / subset.class_name.lower() / "labels"
    scorers = {
        "pseudo labels": ClassScorer(class_id=1, pred_class_id=1),
        "fused labels": ClassScorer(class_id=1, pred_class_id=cid),
        f"fused labels at 1/{factor}": ClassScorer(class_id=1, pred_class_id=cid),
        f"annotation at 1/{factor}": ClassScorer(class_id=1, pred_class_id=1),
    }
    for stem in subset.stems:
        gt = subset.mask(stem)
        fused_path = find_png(fused / "labels", subset.split, stem)
        pseudo_path = find_png(pseudo_dir, subset.split, stem)
        for folder, path in ((fused / "labels", fused_path), (pseudo_dir, pseudo_path)):
            if path is None:
                raise FileNotFoundError(f"{folder}: no label for annotated image {stem!r}")
        f_label = read_label(fused_path)
        scorers["pseudo labels"].update(read_label(pseudo_path), gt)
        scorers["fused labels"].update(f_label, gt)
        scorers[f"fused labels at 1/{factor}"].update(read_at(f_label, factor, k), gt)
        # the annotation's 255 pixels read as background here, and are ignored when scored
        truth = (gt == 1).astype(np.uint8)
        scorers[f"annotation at 1/{factor}"].update(read_at(truth, factor, 2), gt)
    rows = []
    for name, scorer in scorers.items():
        r = scorer.compute()
        rows.append({"source": name} | {m: round_score(getattr(r, m), nd) for m, _, nd in METRICS})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="an `engine demo --out` folder")
    ap.add_argument("--factor", type=int, default=2, help="mask resolution 1/f (MaSSFormer: 2)")
    ap.add_argument("--out", type=Path, default=None, help="folder for label_ceiling.json")
    args = ap.parse_args()
    if args.factor < 1:
        ap.error(f"--factor must be >= 1, got {args.factor}")
    subsets = sorted(p.parent for p in (args.demo / "annotated").glob("*/subset.json"))
    if not subsets:
        sys.exit(f"{args.demo}/annotated: no annotated subset (is this an engine demo folder?)")
    result = {"demo": str(args.demo), "factor": args.factor, "classes": {}}
    for subset in map(read_subset, subsets):
        rows = score_class(args.demo, subset, args.factor)
        result["classes"][subset.class_name] = rows
        print(f"{subset.class_name}:")
        for r in rows:
            scores = "  ".join(f"{title} {format_score(r[k], nd)}" for k, title, nd in METRICS)
            print(f"  {r['source']:22s} {scores}")
    out = (args.out or args.demo) / "label_ceiling.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
