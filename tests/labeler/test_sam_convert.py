"""Original segment-anything checkpoints (key names and shapes of the release) -> SamModel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from labeler.sam_convert import convert_sam_checkpoint, load_sam_pth, rename_sam_keys


def original_sam_state_dict(
    embed: int, depth: int, heads: int, global_idx: list[int], img: int = 1024, patch: int = 16,
    window: int = 14, out: int = 256, mlp_ratio: int = 4, seed: int = 0, meta: bool = False,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """A random state dict with the key names and shapes of segment-anything's ``Sam`` (written
    from its module layout: ImageEncoderViT, PromptEncoder, MaskDecoder, TwoWayTransformer);
    ``meta``: shapes only (tensors on the meta device, no memory: ViT-H is 2.5 GB)."""
    g = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, ...]] = {}
    grid = img // patch
    hd = embed // heads
    e = "image_encoder"
    shapes[f"{e}.pos_embed"] = (1, grid, grid, embed)
    shapes[f"{e}.patch_embed.proj.weight"] = (embed, 3, patch, patch)
    shapes[f"{e}.patch_embed.proj.bias"] = (embed,)
    for i in range(depth):
        b = f"{e}.blocks.{i}"
        size = grid if i in global_idx else window
        for n in ("norm1", "norm2"):
            shapes[f"{b}.{n}.weight"] = shapes[f"{b}.{n}.bias"] = (embed,)
        shapes[f"{b}.attn.qkv.weight"], shapes[f"{b}.attn.qkv.bias"] = (
            (3 * embed, embed),
            (3 * embed,),
        )
        shapes[f"{b}.attn.proj.weight"], shapes[f"{b}.attn.proj.bias"] = (embed, embed), (embed,)
        shapes[f"{b}.attn.rel_pos_h"] = shapes[f"{b}.attn.rel_pos_w"] = (2 * size - 1, hd)
        shapes[f"{b}.mlp.lin1.weight"], shapes[f"{b}.mlp.lin1.bias"] = (
            (mlp_ratio * embed, embed),
            (mlp_ratio * embed,),
        )
        shapes[f"{b}.mlp.lin2.weight"], shapes[f"{b}.mlp.lin2.bias"] = (
            (embed, mlp_ratio * embed),
            (embed,),
        )
    shapes[f"{e}.neck.0.weight"] = (out, embed, 1, 1)
    shapes[f"{e}.neck.1.weight"] = shapes[f"{e}.neck.1.bias"] = (out,)
    shapes[f"{e}.neck.2.weight"] = (out, out, 3, 3)
    shapes[f"{e}.neck.3.weight"] = shapes[f"{e}.neck.3.bias"] = (out,)
    p = "prompt_encoder"
    shapes[f"{p}.pe_layer.positional_encoding_gaussian_matrix"] = (2, out // 2)
    for i in range(4):
        shapes[f"{p}.point_embeddings.{i}.weight"] = (1, out)
    shapes[f"{p}.not_a_point_embed.weight"] = shapes[f"{p}.no_mask_embed.weight"] = (1, out)
    for idx, (cin, cout, k) in {0: (1, 4, 2), 3: (4, 16, 2), 6: (16, out, 1)}.items():
        shapes[f"{p}.mask_downscaling.{idx}.weight"] = (cout, cin, k, k)
        shapes[f"{p}.mask_downscaling.{idx}.bias"] = (cout,)
    for idx, c in {1: 4, 4: 16}.items():
        shapes[f"{p}.mask_downscaling.{idx}.weight"] = shapes[
            f"{p}.mask_downscaling.{idx}.bias"
        ] = (c,)
    d = "mask_decoder"
    inner = out // 2  # attention_downsample_rate 2 for the cross attentions

    def attn(prefix: str, width: int) -> None:
        for n in ("q_proj", "k_proj", "v_proj"):
            shapes[f"{prefix}.{n}.weight"], shapes[f"{prefix}.{n}.bias"] = (width, out), (width,)
        shapes[f"{prefix}.out_proj.weight"], shapes[f"{prefix}.out_proj.bias"] = (
            (out, width),
            (out,),
        )

    for i in range(2):
        t = f"{d}.transformer.layers.{i}"
        attn(f"{t}.self_attn", out)
        attn(f"{t}.cross_attn_token_to_image", inner)
        attn(f"{t}.cross_attn_image_to_token", inner)
        for n in ("norm1", "norm2", "norm3", "norm4"):
            shapes[f"{t}.{n}.weight"] = shapes[f"{t}.{n}.bias"] = (out,)
        shapes[f"{t}.mlp.lin1.weight"], shapes[f"{t}.mlp.lin1.bias"] = (2048, out), (2048,)
        shapes[f"{t}.mlp.lin2.weight"], shapes[f"{t}.mlp.lin2.bias"] = (out, 2048), (out,)
    attn(f"{d}.transformer.final_attn_token_to_image", inner)
    shapes[f"{d}.transformer.norm_final_attn.weight"] = shapes[
        f"{d}.transformer.norm_final_attn.bias"
    ] = (out,)
    shapes[f"{d}.iou_token.weight"], shapes[f"{d}.mask_tokens.weight"] = (1, out), (4, out)
    shapes[f"{d}.output_upscaling.0.weight"], shapes[f"{d}.output_upscaling.0.bias"] = (
        (out, out // 4, 2, 2),
        (out // 4,),
    )
    shapes[f"{d}.output_upscaling.1.weight"] = shapes[f"{d}.output_upscaling.1.bias"] = (out // 4,)
    shapes[f"{d}.output_upscaling.3.weight"], shapes[f"{d}.output_upscaling.3.bias"] = (
        (out // 4, out // 8, 2, 2),
        (out // 8,),
    )
    for m in range(4):
        for k, (o, i) in enumerate([(out, out), (out, out), (out // 8, out)]):
            shapes[f"{d}.output_hypernetworks_mlps.{m}.layers.{k}.weight"] = (o, i)
            shapes[f"{d}.output_hypernetworks_mlps.{m}.layers.{k}.bias"] = (o,)
    for k, (o, i) in enumerate([(256, out), (256, 256), (4, 256)]):
        shapes[f"{d}.iou_prediction_head.layers.{k}.weight"] = (o, i)
        shapes[f"{d}.iou_prediction_head.layers.{k}.bias"] = (o,)
    if meta:
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}


def _small_sd() -> dict[str, torch.Tensor]:
    """A SAM of 32 channels, 2 blocks and a 64 px input in the original layout."""
    return original_sam_state_dict(
        embed=32, depth=2, heads=2, global_idx=[1], img=64, patch=8, window=4, out=32
    )


def _check_converted(sd, model):
    renamed = rename_sam_keys(sd)
    got = model.state_dict()
    assert set(renamed) == set(got)
    for k in ("vision_encoder.layers.0.attn.qkv.weight", "mask_decoder.iou_prediction_head.proj_out.weight",
              "mask_decoder.output_hypernetworks_mlps.3.layers.0.bias", "prompt_encoder.mask_embed.conv3.weight"):  # fmt: skip
        assert torch.equal(got[k], renamed[k])
    assert torch.equal(
        got["shared_image_embedding.positional_embedding"],
        sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"],
    )


def test_small_original_layout_converts_and_runs(tmp_path):
    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    model, processor = load_sam_pth(tmp_path / "sam_small.pth")
    cfg = model.config.vision_config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (32, 2, 2)
    assert (list(cfg.global_attn_indexes), cfg.window_size, cfg.image_size) == ([1], 4, 64)
    _check_converted(sd, model)
    img = np.zeros((40, 48, 3), np.uint8)
    inputs = processor(images=[img], input_boxes=[[[5, 5, 30, 30]]], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, multimask_output=False)
    assert (
        outputs.pred_masks.shape == (1, 1, 1, 32, 32) and torch.isfinite(outputs.pred_masks).all()
    )
    # convert once to a directory, then it loads like any transformers checkpoint
    from labeler.models import load_segmenter

    out = convert_sam_checkpoint(tmp_path / "sam_small.pth", tmp_path / "converted")
    loaded = load_segmenter(str(out))
    assert loaded.model_type == "sam"
    assert torch.equal(
        loaded.model.state_dict()["vision_encoder.pos_embed"], sd["image_encoder.pos_embed"]
    )


def test_converted_folder_records_its_checkpoint_and_reconverts_to_the_same_bytes(
    tmp_path, monkeypatch
):
    """A converted folder named no .pth: a label run records the folder only, so which of SAM's
    checkpoints it held was lost with the command line. Its record (the file as given and
    resolved, size, SHA-256, code) is enough to convert it again, byte for byte."""
    import hashlib
    import json

    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    monkeypatch.chdir(tmp_path)
    out = convert_sam_checkpoint("sam_small.pth", "converted")
    record = json.loads((out / "convert-sam.json").read_text())
    pth = (tmp_path / "sam_small.pth").read_bytes()
    assert record["source"] == "sam_small.pth"
    assert record["source_resolved"] == str(tmp_path / "sam_small.pth")
    assert record["source_bytes"] == len(pth)
    assert record["source_sha256"] == hashlib.sha256(pth).hexdigest()
    assert record["environment"]["cwd"] == str(tmp_path)
    again = convert_sam_checkpoint(record["source_resolved"], tmp_path / "again")
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    # every file of the mode of every output (transformers 5 wrote the weights 0600: a shared
    # machine's other users could not read the converted model)
    from tests.file_modes import file_mode

    modes = {f.name: f.stat().st_mode & 0o777 for f in out.iterdir()}
    assert set(modes.values()) == {file_mode()}, modes


def test_a_conversion_killed_before_its_swap_is_said_unfinished_and_written_again(tmp_path):
    """``kill -9`` of ``engine convert-sam`` as it put its swap record into its staging folder,
    its files written there (crash-injection pass 58): the folder holding only that hidden
    folder, engine info said "no image split folders found" (exit 2), as of a wrong folder.
    Now it says the conversion stopped and that the same command writes the whole model
    (exit 1); that command does."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import KILLED_AT, run_killed

    torch.save(_small_sd(), tmp_path / "sam_small.pth")
    out = tmp_path / "sam"
    args = ["convert-sam", str(tmp_path / "sam_small.pth"), str(out)]
    run_killed(KILLED_AT, ".swap.json", *args)
    assert [p.name.startswith(".convert-sam.") for p in out.iterdir()] == [True]
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    assert (
        f"{out}: a conversion (engine convert-sam) stopped before it put its model's files in "
        f"(only its staging folder is here): engine convert-sam into {out} writes the whole model"
    ) in res.output
    assert CliRunner().invoke(app, args).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "convert-sam.json", "model.safetensors", "processor_config.json"
    ]  # fmt: skip
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output  # before: "no image split folders found", exit 2
    said = f"{out}: a SAM model engine convert-sam converted from {tmp_path / 'sam_small.pth'}"
    assert f"{said}: give it to engine label as --segmenter {out}" in res.output


def test_a_conversion_killed_removing_its_staging_folder_is_said_converted(tmp_path):
    """``kill -9`` of ``engine convert-sam`` as it removed its emptied staging folder, its model
    whole (crash-injection pass 58, kill points 9 to 11): engine info said "no image split
    folders found" (exit 2), as of a finished conversion; the same command refuses the folder
    (converted once). Now a converted model, the staging folder named to delete."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import KILLED_UNLINKING, run_killed

    torch.save(_small_sd(), tmp_path / "sam_small.pth")
    out = tmp_path / "sam"
    run_killed(
        KILLED_UNLINKING,
        ".swap.json",
        "1",
        "convert-sam",
        str(tmp_path / "sam_small.pth"),
        str(out),
    )
    (staging,) = out.glob(".convert-sam.*")
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert (
        f"--segmenter {out} ({staging.name}/, left by the conversion killed as it finished: delete it)"
        in res.output
    )


def test_a_conversion_onto_a_mount_that_refuses_chmod_keeps_the_mounts_mode(tmp_path, monkeypatch):
    """FAT, SMB without Unix extensions, s3fs refuse chmod (EPERM): the converted files keep
    the mount's mode, as every output does there. convert-sam is the one command that still
    sets a mode (of the files save_pretrained wrote), so the one to meet such a mount."""
    import errno
    import os

    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")

    def refused(*args, **kwargs):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "fchmod", refused)
    out = convert_sam_checkpoint(tmp_path / "sam_small.pth", tmp_path / "converted")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


def test_converted_files_get_what_the_folders_default_acl_gives_a_new_file(tmp_path):
    """A folder whose default ACL keeps others out (``setfacl -d -m o::-``) gives a new file
    0660 under the umask 022: the converted files were set to 0644 (0666 less the umask),
    readable by every user of the machine; they get what ``open()`` gives there now."""
    import os

    from tests.annotations.test_filesystems import _default_acl

    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    _default_acl(tmp_path, 6, 6, 0)
    before = os.umask(0o022)
    try:
        out = convert_sam_checkpoint(tmp_path / "sam_small.pth", tmp_path / "converted")
    finally:
        os.umask(before)
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in out.iterdir()}
    assert "model.safetensors" in modes
    assert set(modes.values()) == {"0o660"}, modes


def test_not_a_sam_checkpoint(tmp_path):
    torch.save({"foo": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="not an original segment-anything"):
        load_sam_pth(tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_sam_pth(tmp_path / "missing.pth")
    (tmp_path / "t.pth").write_text("text")  # one line, not torch's weights_only explanation
    with pytest.raises(ValueError, match=r"t\.pth: not a readable SAM checkpoint: not a PyTorch"):
        load_sam_pth(tmp_path / "t.pth")


def test_a_tensor_of_another_shape_is_one_line_naming_the_file(tmp_path):
    """Fuzzed, round 47: torch's "Error(s) in loading state_dict for SamModel:", no file named."""
    sd = _small_sd()
    sd["image_encoder.blocks.0.attn.qkv.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "sam_small.pth")
    with pytest.raises(ValueError) as e:
        load_sam_pth(tmp_path / "sam_small.pth")
    said = str(e.value)
    assert said.startswith(f"{tmp_path / 'sam_small.pth'}: checkpoint does not match the SAM")
    assert "size mismatch for vision_encoder.layers.0.attn.qkv.weight" in said
    assert "\n" not in said and "Error(s) in loading" not in said  # torch's first line: no file


def test_convert_never_writes_into_another_models_folder(tmp_path):
    """engine convert-sam into an existing model folder (a Grounding DINO given by mistake)
    replaced its config.json and weights; now refused with nothing touched. A new or empty
    folder gets the conversion, with no temporary folder left beside it; a folder given as the
    checkpoint is one line."""
    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    other = tmp_path / "gdino"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "grounding-dino"}')
    (other / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(ValueError, match=r"gdino: not empty \(config.json, model.safetensors\)"):
        convert_sam_checkpoint(tmp_path / "sam_small.pth", other)
    assert (other / "config.json").read_text() == '{"model_type": "grounding-dino"}'
    assert (other / "model.safetensors").read_bytes() == b"weights"
    with pytest.raises(ValueError, match=r"sam_small.pth: a file, not a directory"):
        convert_sam_checkpoint(tmp_path / "sam_small.pth", tmp_path / "sam_small.pth")
    with pytest.raises(ValueError, match=r"gdino: a directory, not an original SAM .pth"):
        load_sam_pth(other)
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "sam"):
        convert_sam_checkpoint(tmp_path / "sam_small.pth", out)
        assert sorted(f.name for f in out.iterdir()) == [
            "config.json",
            "convert-sam.json",
            "model.safetensors",
            "processor_config.json",
        ]
    assert not [f for f in tmp_path.rglob("*.tmp")]


@pytest.mark.slow
def test_real_vit_b_layout(tmp_path):
    """sam_vit_b_01ec64.pth layout: ViT-B/16, 12 blocks, global attention at 2, 5, 8, 11."""
    sd = original_sam_state_dict(embed=768, depth=12, heads=12, global_idx=[2, 5, 8, 11])
    assert sum(v.numel() for v in sd.values()) == pytest.approx(93.7e6, rel=0.01)
    torch.save(sd, tmp_path / "sam_vit_b_01ec64.pth")
    model, _ = load_sam_pth(tmp_path / "sam_vit_b_01ec64.pth")
    assert model.config.vision_config.global_attn_indexes == [2, 5, 8, 11]
    assert model.config.vision_config.window_size == 14
    _check_converted(sd, model)


# The three releases as transformers' convert_sam_to_hf.py configures them (get_config):
# ViT-B = SamVisionConfig() defaults; ViT-L and ViT-H with their width, depth, heads and
# global-attention blocks. Checked against transformers 5.25 (docs/labeler.md).
RELEASES = {
    "sam_vit_b_01ec64": (768, 12, 12, [2, 5, 8, 11]),
    "sam_vit_l_0b3195": (1024, 24, 16, [5, 11, 17, 23]),
    "sam_vit_h_4b8939": (1280, 32, 16, [7, 15, 23, 31]),
}


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_config_read_off_shapes_equals_transformers_conversion(name):
    """Every field of the configuration read off a release's tensor shapes equals the one
    transformers' own conversion gives it (vision, prompt encoder and mask decoder)."""
    from transformers import SamConfig, SamVisionConfig

    from labeler.sam_convert import sam_config_from_state_dict

    embed, depth, heads, global_idx = RELEASES[name]
    sd = original_sam_state_dict(embed, depth, heads, global_idx, meta=True)
    if name == "sam_vit_b_01ec64":
        vision = SamVisionConfig()
    else:
        vision = SamVisionConfig(
            hidden_size=embed,
            num_hidden_layers=depth,
            num_attention_heads=heads,
            global_attn_indexes=global_idx,
        )
    assert sam_config_from_state_dict(sd).to_dict() == SamConfig(vision_config=vision).to_dict()


def test_processor_equals_transformers_conversion():
    """The in-memory conversion's processor is the one transformers' conversion saves
    (``SamImageProcessor()`` defaults: longest edge 1024, padded to 1024x1024 at the bottom and
    right, ImageNet mean / std on 0..1 RGB, bilinear, masks at 256)."""
    from transformers import SamImageProcessor

    from labeler.sam_convert import sam_processor

    ours = sam_processor(1024).image_processor.to_dict()
    assert ours == SamImageProcessor().to_dict()
    assert list(ours["image_mean"]) == [0.485, 0.456, 0.406]  # SAM's 123.675 ... / 255
    assert list(ours["image_std"]) == [0.229, 0.224, 0.225]
    assert ours["do_convert_rgb"] and ours["pad_size"] == {"height": 1024, "width": 1024}


def test_positional_renames_match_transformers_conversion():
    """Renames whose tensors have the same shapes as a neighbour's (a strict load cannot tell
    them apart): the MLP heads' layers.0/1/2, the necks' and mask embedding's numbered
    Sequentials, as transformers' KEYS_TO_MODIFY_MAPPING and hypernetwork rule give them."""
    sd = _small_sd()
    renamed = rename_sam_keys(sd)
    d, p, e = "mask_decoder", "prompt_encoder", "image_encoder"
    expect = {
        f"{d}.iou_prediction_head.layers.0": f"{d}.iou_prediction_head.proj_in",
        f"{d}.iou_prediction_head.layers.1": f"{d}.iou_prediction_head.layers.0",
        f"{d}.iou_prediction_head.layers.2": f"{d}.iou_prediction_head.proj_out",
        f"{d}.output_hypernetworks_mlps.2.layers.0": f"{d}.output_hypernetworks_mlps.2.proj_in",
        f"{d}.output_hypernetworks_mlps.2.layers.1": f"{d}.output_hypernetworks_mlps.2.layers.0",
        f"{d}.output_hypernetworks_mlps.2.layers.2": f"{d}.output_hypernetworks_mlps.2.proj_out",
        f"{d}.output_upscaling.0": f"{d}.upscale_conv1",
        f"{d}.output_upscaling.1": f"{d}.upscale_layer_norm",
        f"{d}.output_upscaling.3": f"{d}.upscale_conv2",
        f"{d}.transformer.norm_final_attn": f"{d}.transformer.layer_norm_final_attn",
        f"{d}.transformer.layers.1.norm3": f"{d}.transformer.layers.1.layer_norm3",
        f"{e}.neck.0": "vision_encoder.neck.conv1",
        f"{e}.neck.1": "vision_encoder.neck.layer_norm1",
        f"{e}.neck.2": "vision_encoder.neck.conv2",
        f"{e}.neck.3": "vision_encoder.neck.layer_norm2",
        f"{e}.blocks.1.norm2": "vision_encoder.layers.1.layer_norm2",
        f"{p}.mask_downscaling.0": f"{p}.mask_embed.conv1",
        f"{p}.mask_downscaling.1": f"{p}.mask_embed.layer_norm1",
        f"{p}.mask_downscaling.3": f"{p}.mask_embed.conv2",
        f"{p}.mask_downscaling.4": f"{p}.mask_embed.layer_norm2",
        f"{p}.mask_downscaling.6": f"{p}.mask_embed.conv3",
    }
    for old, new in expect.items():
        for part in ("weight", "bias"):
            if f"{old}.{part}" in sd:
                assert renamed[f"{new}.{part}"] is sd[f"{old}.{part}"], f"{old}.{part}"
    pe = sd[f"{p}.pe_layer.positional_encoding_gaussian_matrix"]
    assert renamed[f"{p}.shared_embedding.positional_embedding"] is pe
    assert renamed["shared_image_embedding.positional_embedding"] is pe


def test_interrupted_convert_leaves_folders_as_they_were(tmp_path, monkeypatch):
    """A conversion that fails while writing leaves a new --out absent (and the folder made for
    it above it: before the fifty-second round that one stayed), an empty one given empty, no
    hidden folder in either; an earlier interrupted conversion's leftover in --out is no content
    that refuses it."""
    from transformers import SamModel

    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    (tmp_path / "empty").mkdir()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(SamModel, "save_pretrained", full_disk)
        for out in (tmp_path / "new" / "sam", tmp_path / "empty"):
            with pytest.raises(OSError, match="No space"):
                convert_sam_checkpoint(tmp_path / "sam_small.pth", out)
    assert not (tmp_path / "new").exists()
    assert list((tmp_path / "empty").iterdir()) == []
    (tmp_path / "empty" / ".convert-sam.new-x1y2").mkdir()  # a killed conversion's leftover
    convert_sam_checkpoint(tmp_path / "sam_small.pth", tmp_path / "empty")
    assert sorted(f.name for f in (tmp_path / "empty").iterdir()) == [
        "config.json",
        "convert-sam.json",
        "model.safetensors",
        "processor_config.json",
    ]


def test_a_second_conversion_into_the_same_folder_is_refused_while_one_runs(tmp_path, monkeypatch):
    """Two ``engine convert-sam`` into one new folder at once (two jobs of a cluster array): each
    removed the other's hidden folder as an interrupted conversion's leftover, and both failed
    with safetensors' ``I/O error: No such file or directory``, no folder left. Now the second
    stops at once in one line, and the first's conversion is whole."""
    from transformers import SamModel

    from engine.runlock import FolderInUse
    from labeler.models import load_segmenter

    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    out, save, second = tmp_path / "new" / "sam", SamModel.save_pretrained, []

    def meanwhile(self, *args, **kwargs):  # the second job starts while the first writes
        if not second:
            with monkeypatch.context() as m:
                m.setattr(SamModel, "save_pretrained", save)
                try:
                    second.append(convert_sam_checkpoint(tmp_path / "sam_small.pth", out))
                except FolderInUse as e:
                    second.append(e)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(SamModel, "save_pretrained", meanwhile)
    assert convert_sam_checkpoint(tmp_path / "sam_small.pth", out) == out
    assert isinstance(second[0], FolderInUse), second
    assert "\n" not in str(second[0])
    assert str(second[0]).startswith(f"{out}: another engine convert-sam is writing this folder")
    assert sorted(f.name for f in out.iterdir()) == [
        "config.json",
        "convert-sam.json",
        "model.safetensors",
        "processor_config.json",
    ]
    assert load_segmenter(str(out)).model_type == "sam"


def test_a_refused_conversion_leaves_the_folders_made_by_the_one_that_runs(tmp_path, monkeypatch):
    """Two ``engine convert-sam`` into a new models/sam-b at once: B found both folders missing,
    A made them and holds the lock, B is refused, and B removed sam-b and models/ (empty while
    A loads its .pth) under A. A refused conversion removes nothing now."""
    import engine.runlock as runlock
    from engine.runlock import FolderInUse
    from labeler.sam_convert import _converting

    out = tmp_path / "models" / "sam-b"
    real, a, calls = runlock.missing_folders, _converting(out), []

    def found_then_a_starts(folder):  # noqa: ANN001, ANN202
        missing = real(folder)
        calls.append(folder)
        if len(calls) == 1:  # B's; A's own is the second
            a.__enter__()  # A: made the folders, holds the lock, loads the .pth
        return missing

    monkeypatch.setattr(runlock, "missing_folders", found_then_a_starts)
    with (
        pytest.raises(FolderInUse, match="another engine convert-sam is writing"),
        _converting(out),
    ):
        pass
    assert out.is_dir() and list(out.iterdir()) == []  # A's, still there
    a.__exit__(None, None, None)  # A ends, its folder empty (it failed): it removes its folders
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_convert_sam_is_one_line_naming_the_file_and_exit_74(
    tmp_path, monkeypatch
):
    """safetensors' writer raises its own SafetensorError on a full disk, not an OSError:
    ``engine convert-sam`` ended with a traceback and exit code 1. Now the one line of every
    full disk, naming the weights file as it was to be, exit code 74, and no folder left; a
    Python write that names no file (the processor's JSON) names the folder (the same staging
    and ``_saving`` the command runs, without converting the model a second time)."""
    import safetensors
    import transformers.modeling_utils
    from typer.testing import CliRunner

    from annotations.fileio import staged
    from cli import app
    from labeler.sam_convert import STAGING, _saving

    sd = _small_sd()
    torch.save(sd, tmp_path / "sam_small.pth")
    out = tmp_path / "new" / "sam"

    def rust_full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)  # what fitted
        raise safetensors.SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", rust_full)
    res = CliRunner().invoke(app, ["convert-sam", str(tmp_path / "sam_small.pth"), str(out)])
    assert res.exit_code == 74, res.output
    assert " ".join(res.output.split()) == (
        f"error: {out / 'model.safetensors'}: No space left on device; make room and run the "
        "same command again"
    )
    assert not (tmp_path / "new").exists()  # nor the folder made for it (since round 52)
    (tmp_path / "new").mkdir()
    with pytest.raises(OSError) as e, staged(out, STAGING) as staging, _saving(staging):
        (staging / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")  # a Python write names no file
    assert (e.value.errno, e.value.filename) == (28, str(out))
    assert list((tmp_path / "new").iterdir()) == []


def test_a_checkpoint_of_missing_or_unexpected_tensors_is_refused_naming_them(tmp_path):
    """``load_state_dict(strict=False)``: a tensor the shapes do not need for the config (the
    IoU token) missing, or one SAM has no place for, would leave random weights or drop one
    silently; each is one line naming the file and the tensor, in transformers' names."""
    sd = _small_sd()
    del sd["mask_decoder.iou_token.weight"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(ValueError) as e:
        load_sam_pth(tmp_path / "missing.pth")
    assert str(e.value) == (
        f"{tmp_path / 'missing.pth'}: checkpoint does not match the SAM layout: missing "
        "['mask_decoder.iou_token.weight'], unexpected []"
    )
    sd = _small_sd()
    sd["image_encoder.extra.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['vision_encoder.extra"):
        load_sam_pth(tmp_path / "extra.pth")


@pytest.mark.parametrize("content", [[torch.zeros(2)], torch.zeros(2)])
def test_a_checkpoint_that_holds_no_dict_is_one_line_saying_what_it_holds(tmp_path, content):
    torch.save(content, tmp_path / "x.pth")
    with pytest.raises(ValueError) as e:
        load_sam_pth(tmp_path / "x.pth")
    assert str(e.value) == (
        f"{tmp_path / 'x.pth'}: expected a state dict, got {type(content).__name__}"
    )


def test_a_checkpoint_wrapped_in_a_model_key_converts(tmp_path):
    """``{"model": state_dict}`` (a training script's checkpoint) converts as the state dict."""
    sd = _small_sd()
    torch.save({"model": sd, "epoch": 3}, tmp_path / "wrapped.pth")
    model, _ = load_sam_pth(tmp_path / "wrapped.pth")
    _check_converted(sd, model)


def test_a_write_error_that_names_its_file_passes_through_saving_unchanged(tmp_path):
    """``_saving`` names the folder only where the OS error names no file, and turns only
    safetensors' errors that end with an OS error into ``OSError``s; an OS error that names its
    file, and any other error, is raised as it came, never swallowed."""
    import safetensors

    from labeler.sam_convert import _saving

    err = OSError(28, "No space left on device", str(tmp_path / "config.json"))
    with pytest.raises(OSError) as e, _saving(tmp_path):
        raise err
    assert e.value is err
    for other in (
        RuntimeError("a copy failed (os error 28)"),  # not safetensors' own: as it came
        safetensors.SafetensorError("Error while serializing: invalid shape"),  # no OS error
    ):
        with pytest.raises(type(other)) as k, _saving(tmp_path):
            raise other
        assert k.value is other


def test_a_not_empty_out_names_four_of_its_files_and_counts_the_rest(tmp_path):
    from labeler.sam_convert import _check_empty

    for n in range(4):
        (tmp_path / f"f{n}").write_text("x")
    with pytest.raises(ValueError, match=r": not empty \(f0, f1, f2, f3\); converting"):
        _check_empty(tmp_path)
    (tmp_path / "f4").write_text("x")
    with pytest.raises(ValueError, match=r": not empty \(f0, f1, f2, f3, \.\.\. 1 more\); "):
        _check_empty(tmp_path)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="open files listed by /proc")
def test_converting_closes_the_folder_it_locked(tmp_path):
    """The lock is the folder opened read-only: closed again once the conversion ends, as it
    succeeds or fails (a long-lived caller converting many checkpoints kept one per folder).
    The descriptors leading to the folder are counted, not all the process's: a file another
    test left for the garbage collector, closed during the block, failed the count."""
    import contextlib
    import os

    from labeler.sam_convert import _converting

    def holding(folder: Path) -> int:
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
                link = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
                n += link == str(folder) or link.startswith(f"{folder}/")
        return n

    with _converting(tmp_path / "a"):
        assert holding(tmp_path / "a") == 1
    with pytest.raises(RuntimeError), _converting(tmp_path / "b"):
        assert holding(tmp_path / "b") == 1
        raise RuntimeError("failed")
    assert holding(tmp_path) == 0


def test_a_pth_given_as_the_segmenter_loads_converted_in_memory(tmp_path):
    """``--segmenter sam_vit_b_01ec64.pth``: :func:`labeler.models.load_segmenter` converts the
    original checkpoint in memory and returns it as any loaded segmenter (eval mode, its
    processor, model type sam, the path as given, no hub revision)."""
    from labeler.models import load_segmenter

    sd = _small_sd()
    pth = tmp_path / "sam_small.pth"
    torch.save(sd, pth)
    loaded = load_segmenter(str(pth))
    assert (loaded.source, loaded.model_type, loaded.revision) == (str(pth), "sam", None)
    assert type(loaded.model).__name__ == "SamModel" and not loaded.model.training
    assert loaded.processor.image_processor.pad_size == {"height": 64, "width": 64}
    _check_converted(sd, loaded.model)
