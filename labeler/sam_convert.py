"""Original segment-anything checkpoints (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``,
``sam_vit_h_4b8939.pth``) -> transformers ``SamModel``.

The original state dict is renamed to transformers' layout and the configuration is read off the
tensor shapes (ViT width, depth, heads, window size, global-attention blocks), so any checkpoint
of the original layout converts, not only the three released sizes. No segment-anything install
is needed. Use it in memory (``--segmenter FILE.pth``) or once to a directory
(``engine convert-sam FILE.pth DIR``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotations.fileio import (
    atomic_write_json,
    fcntl_module,
    naming,
    new_file_mode,
    same_file,
    set_mode,
    staged,
    swap_in,
    unreadable_torch_file,
)

log = logging.getLogger(__name__)

# Substring renames, applied in order (original name -> transformers name).
_RENAMES: tuple[tuple[str, str], ...] = (
    ("image_encoder.", "vision_encoder."),
    (".blocks.", ".layers."),
    ("patch_embed.proj.", "patch_embed.projection."),
    ("neck.0.", "neck.conv1."),
    ("neck.1.", "neck.layer_norm1."),
    ("neck.2.", "neck.conv2."),
    ("neck.3.", "neck.layer_norm2."),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("point_embeddings.", "point_embed."),
    ("mask_downscaling.0.", "mask_embed.conv1."),
    ("mask_downscaling.1.", "mask_embed.layer_norm1."),
    ("mask_downscaling.3.", "mask_embed.conv2."),
    ("mask_downscaling.4.", "mask_embed.layer_norm2."),
    ("mask_downscaling.6.", "mask_embed.conv3."),
    ("output_upscaling.0.", "upscale_conv1."),
    ("output_upscaling.1.", "upscale_layer_norm."),
    ("output_upscaling.3.", "upscale_conv2."),
    (".norm", ".layer_norm"),  # norm1..4 and norm_final_attn
)
# The original 3-layer MLP heads (layers.0/1/2) are proj_in / layers.0 / proj_out in transformers.
_MLP = re.compile(r"(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.(\d)\.")
_MLP_NAMES = {"0": "proj_in.", "1": "layers.0.", "2": "proj_out."}


def rename_sam_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Original key names -> transformers ``SamModel`` key names (values untouched)."""
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key in ("pixel_mean", "pixel_std"):
            continue  # normalisation lives in the processor
        new = key
        for old, rep in _RENAMES:
            new = new.replace(old, rep)
        new = _MLP.sub(lambda m: f"{m.group(1)}.{_MLP_NAMES[m.group(2)]}", new)
        out[new] = value
    pe = "prompt_encoder.shared_embedding.positional_embedding"
    if pe in out:
        out["shared_image_embedding.positional_embedding"] = out[pe]
    return out


def sam_config_from_state_dict(sd: dict[str, Any], source: str = "checkpoint"):
    """A ``SamConfig`` matching an original-layout state dict, read from tensor shapes."""
    from transformers import SamConfig

    try:
        patch_w = sd["image_encoder.patch_embed.proj.weight"]
        hidden, _, patch, _ = patch_w.shape
        grid = sd["image_encoder.pos_embed"].shape[1]
        depth = 1 + max(
            int(m.group(1)) for k in sd if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))
        )
        rel = [sd[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]
        head_dim = rel[0][1]
        global_idx = [i for i, s in enumerate(rel) if s[0] == 2 * grid - 1]
        windowed = [s[0] for i, s in enumerate(rel) if i not in global_idx]
        window = (windowed[0] + 1) // 2 if windowed else 14
        out_ch = sd["image_encoder.neck.0.weight"].shape[0]
        mlp_dim = sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
        dec_hidden = sd["mask_decoder.transformer.layers.0.self_attn.q_proj.weight"].shape[0]
        cross = sd[
            "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"
        ].shape[0]
        dec_layers = 1 + max(
            int(m.group(1))
            for k in sd
            if (m := re.match(r"mask_decoder\.transformer\.layers\.(\d+)\.", k))
        )
        dec_mlp = sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
        iou_hidden = sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]
        n_masks = sd["mask_decoder.mask_tokens.weight"].shape[0]
        mask_ch = sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        raise ValueError(
            f"{source}: not an original segment-anything SAM state dict (missing or odd {e})"
        ) from None
    image_size = int(grid * patch)
    return SamConfig(
        vision_config=dict(
            hidden_size=int(hidden), num_hidden_layers=int(depth), num_attention_heads=int(hidden // head_dim),
            output_channels=int(out_ch), image_size=image_size, patch_size=int(patch), window_size=int(window),
            global_attn_indexes=global_idx, num_pos_feats=int(out_ch // 2), mlp_dim=int(mlp_dim),
        ),
        prompt_encoder_config=dict(
            hidden_size=int(out_ch), image_size=image_size, patch_size=int(patch), mask_input_channels=int(mask_ch),
        ),
        mask_decoder_config=dict(
            hidden_size=int(dec_hidden), mlp_dim=int(dec_mlp), num_hidden_layers=int(dec_layers),
            attention_downsample_rate=int(dec_hidden // cross), num_multimask_outputs=int(n_masks - 1),
            iou_head_hidden_dim=int(iou_hidden),
        ),
    )  # fmt: skip


def load_sam_pth(path: str | os.PathLike):
    """``(SamModel, SamProcessor)`` from an original ``.pth`` checkpoint, converted in memory."""
    import torch
    from transformers import SamModel

    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path}: a directory, not an original SAM .pth checkpoint; a transformers SAM "
            "directory needs no conversion: pass it as --segmenter DIR"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SAM checkpoint not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise unreadable_torch_file(path, e, "SAM checkpoint") from None
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    config = sam_config_from_state_dict(sd, str(path))
    model = SamModel(config)
    try:
        missing, unexpected = model.load_state_dict(rename_sam_keys(sd), strict=False)
    except RuntimeError as e:  # a tensor of another shape: torch's first line names no file
        detail = "; ".join(x.strip() for x in str(e).splitlines()[1:3] if x.strip())
        raise ValueError(
            f"{path}: checkpoint does not match the SAM layout ({detail[:300]})"
        ) from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: checkpoint does not match the SAM layout: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval(), sam_processor(config.vision_config.image_size)


def sam_processor(size: int):
    """The ``SamProcessor`` of a SAM whose image encoder takes ``size`` px squares (1024 for the
    released models): longest edge resized to ``size`` and padded square, masks at ``size / 4``
    (the mask decoder's output), as the hub's processors are configured."""
    from transformers import SamImageProcessor, SamProcessor

    return SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": size},
            pad_size={"height": size, "width": size},
            mask_size={"longest_edge": size // 4},
            mask_pad_size={"height": size // 4, "width": size // 4},
        )
    )


CONVERT_RECORD = "convert-sam.json"  # beside the converted model: which .pth it was made of


def conversion_record(path: str | os.PathLike) -> dict[str, Any]:
    """What a converted folder was made of: the ``.pth`` as given and resolved, its size and
    SHA-256, and the code and versions that converted it. A label run records the folder's
    path only (``backend.models.segmenter.source``): before the forty-second round nothing
    said which of SAM's checkpoints it held."""
    from engine.runinfo import environment, file_sha256

    src = Path(path)
    return {
        "command": "engine convert-sam",
        "source": str(src),
        "source_resolved": str(src.resolve()),
        "source_bytes": src.stat().st_size,
        "source_sha256": file_sha256(src),
        "environment": environment(),
    }


STAGING = ".convert-sam."  # the hidden folder a conversion is written into, in its --out


def convert_sam_checkpoint(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert once: save the transformers model and processor to ``out_dir`` (use it as
    ``--segmenter out_dir`` afterwards).

    ``out_dir`` must be new or empty: ``save_pretrained`` into a model folder (a Grounding DINO
    given by mistake) replaced its config.json and weights, leaving a SAM config beside the
    other model's tokenizer. The files are written to a hidden folder inside it
    (:func:`~annotations.fileio.staged`) and moved into place once all are written, so an
    interrupted conversion leaves no half-written folder: a folder it created is removed again
    (with the parents it made for it), an empty one given stays empty (the folders above it
    stay), and an earlier interrupted conversion's leftover is removed, not taken for content.

    One conversion writes ``out_dir`` at a time (:func:`_converting`): a second one into it
    while the first runs (two jobs of a cluster array) stops at once with one line. Before,
    each removed the other's hidden folder as an interrupted conversion's leftover, and both
    failed with safetensors' ``I/O error: No such file or directory``, leaving no folder."""
    from engine.progress import no_hf_progress_bars
    from labeler.config import check_docstrings_kept

    check_docstrings_kept()  # before the folder is taken
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: a file, not a directory; give a new directory to write into")
    _check_empty(out)  # before the lock: a model folder given by mistake is not touched at all
    with _converting(out):
        _check_empty(out)  # a conversion that finished while this one waited for the lock
        model, processor = load_sam_pth(path)
        with staged(out, STAGING) as staging:
            with no_hf_progress_bars(), _saving(staging):  # no bars for one small file
                model.save_pretrained(staging)
                processor.save_pretrained(staging)
            _as_every_output(staging)
            atomic_write_json(staging / CONVERT_RECORD, conversion_record(path))
            swap_in(staging, tuple(sorted(f.name for f in staging.iterdir())))
    return out


# safetensors' Rust writer ends its message with the OS error: "Error while serializing: I/O
# error: No space left on device (os error 28)"
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)\s*$")


@contextlib.contextmanager
def _saving(staging: Path) -> Iterator[None]:
    """``save_pretrained`` into ``staging`` with its disk errors as ``OSError``s naming the file:
    safetensors raises its own ``SafetensorError`` (not an ``OSError``), so a full disk ended
    ``engine convert-sam`` with a traceback and exit code 1, not the one line and exit code 74
    of every other write. A Python ``write`` refused names no file: then the folder."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise naming(e, staging) from None
        raise
    except Exception as e:
        found = _RUST_OS_ERROR.search(str(e))
        if type(e).__name__ != "SafetensorError" or found is None:
            raise
        code = int(found.group(1))  # the file is transformers' name for a single shard
        raise OSError(code, os.strerror(code), str(staging / "model.safetensors")) from None


def _as_every_output(folder: Path) -> None:
    """Give the files ``save_pretrained`` wrote the mode of every output, the one ``open()``
    gives a new file there (:func:`~annotations.fileio.new_file_mode`: 0666 less the umask, or
    the folder's default ACL's): transformers 5 writes ``model.safetensors`` 0600, so on a
    shared machine the converted model was readable by its converter alone (the other files
    0644). Before the fifty-fourth round they were set to 0666 less the umask whatever the
    folder's default ACL said (0644 where ``open()`` gives 0660 or 0664)."""
    mode = new_file_mode(folder)
    for f in folder.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                set_mode(fd, mode)
            finally:
                os.close(fd)


def _check_empty(out: Path) -> None:
    """Refuse an ``out`` that holds anything but an interrupted conversion's hidden folder."""
    held = (
        sorted(f.name for f in out.iterdir() if not f.name.startswith(STAGING))
        if out.is_dir()
        else []
    )
    if held:
        shown = ", ".join(held[:4]) + (f", ... {len(held) - 4} more" if len(held) > 4 else "")
        raise ValueError(
            f"{out}: not empty ({shown}); converting would replace its files: give a new "
            "directory, or delete this one first"
        )


@contextlib.contextmanager
def _converting(out: Path) -> Iterator[None]:
    """Hold an advisory lock (``fcntl.flock``) on the folder ``out`` itself (created; removed
    again when the conversion leaves it empty) while converting into it: no lock file is left
    in the model folder. A second conversion into it raises :class:`engine.runlock.FolderInUse`
    at once. Where ``flock`` does not exist (Windows: the folder is not opened either, which
    Windows refuses) or the file system refuses it on a folder (NFS locks files opened for
    writing only), the conversion goes on unlocked, with a warning where it was refused."""
    from engine.runlock import FolderInUse, missing_folders

    created = missing_folders(out)  # with the parents made for it: removed again if left empty
    out.mkdir(parents=True, exist_ok=True)
    fcntl = fcntl_module()  # None on Windows: no flock, and no folder opened as a file
    fd = os.open(out, os.O_RDONLY) if fcntl is not None else None
    mine = fcntl is None  # whether the folders are this conversion's to remove: it held them
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUse(
                    f"{out}: another engine convert-sam is writing this folder now; wait for it "
                    "to finish (its conversion is then here), or give another directory"
                ) from None
            except OSError as e:  # a file system without locks on folders (NFS): unlocked
                log.warning("%s: cannot lock it (%s); converting without the lock", out, e.strerror)
            if not same_file(fd, out):  # removed by the conversion that held it (it failed)
                raise FolderInUse(
                    f"{out}: another engine convert-sam was writing this folder and removed it; "
                    "run the same command again"
                )
        mine = True
        yield
    finally:
        # a refused conversion removes nothing: the folders it found missing may be those of
        # the conversion that holds the lock, made meanwhile (before, sam-b was removed under it)
        with contextlib.suppress(OSError):  # rmdir refuses a folder that holds the conversion
            for made in created if mine else ():  # out, then the parents made for it (models/)
                made.rmdir()
        if fd is not None:
            os.close(fd)  # releases the lock, once the folder is whole or gone
