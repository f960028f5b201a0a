"""Write the key/shape table of an mmseg MaSSFormer checkpoint (the release's state-dict layout).

    python bench/release_keys.py release_r50.pth --out tests/trainer/data/massformer_r50_release_keys.json

Reads only the checkpoint (torch, no mmseg): its ``state_dict`` in order, each tensor's shape and
dtype, and the ``meta`` fields that say where it came from (release commit, mm* package versions,
when the checkpoint carries them). How the committed table's checkpoint was built is described in
tests/trainer/data/README.md. The table lets the converter's tests use the release's exact key
names and shapes without the release, mmseg or any network.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

#: state-dict entries that are buffers, not parameters (BatchNorm statistics)
BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
#: meta fields copied into the table when present
META_FIELDS = (
    "release_commit",
    "mmseg_version",
    "mmengine_version",
    "mmcv_version",
    "mmdet_version",
    "torch_version",
)


def key_table(ckpt: dict, source: str) -> dict:
    """The table for one loaded checkpoint: ``shapes``/``dtypes`` keyed by state-dict name (in the
    checkpoint's order), the parameter count (entries that are not BN statistics) and provenance."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{source}: not an mmseg checkpoint (no 'state_dict' dict)")
    sd = ckpt["state_dict"]
    meta = ckpt.get("meta") or {}
    shapes = {k: list(v.shape) for k, v in sd.items()}
    dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()}
    n_params = sum(v.numel() for k, v in sd.items() if not k.endswith(BUFFER_SUFFIXES))
    return {
        "source": {
            "checkpoint": Path(source).name,
            **{f: meta[f] for f in META_FIELDS if f in meta},
        },
        "num_entries": len(sd),
        "num_parameters": n_params,
        "shapes": shapes,
        "dtypes": dtypes,
    }


def dumps(table: dict) -> str:
    """JSON with one state-dict entry per line, so a diff of two tables reads key by key."""
    out = ["{"]
    for i, (name, value) in enumerate(table.items()):
        comma = "," if i < len(table) - 1 else ""
        if isinstance(value, dict) and name in ("shapes", "dtypes"):
            rows = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            out.append(f"  {json.dumps(name)}: {{\n" + ",\n".join(rows) + f"\n  }}{comma}")
        else:
            out.append(f"  {json.dumps(name)}: {json.dumps(value)}{comma}")
    out.append("}")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="mmseg checkpoint (.pth) with state_dict and meta")
    p.add_argument("--out", type=Path, required=True, help="JSON table to write")
    a = p.parse_args()
    ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    table = key_table(ckpt, str(a.checkpoint))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=a.out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(dumps(table))
    os.chmod(tmp, 0o644)
    os.replace(tmp, a.out)
    print(f"{a.out}: {table['num_entries']} entries, {table['num_parameters']:,} parameters")


if __name__ == "__main__":
    main()
