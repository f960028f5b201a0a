"""The labeler's load-time checks against the released checkpoints' own settings.

A segmenter whose processor makes another input size than its model reads is refused at load
(:func:`labeler.models.check_input_size`); a refusal that fired on a released checkpoint would
stop every user, and the tiny random models of the other tests cannot show it. The released
files' values are recorded here (no network; sources in docs/labeler.md, "Checked against the
released configs"), the folders rebuilt from them, and each test checked to fail on a changed
value (a 1008 SAM 3 processor in a 1024 px folder, a 1024 px SAM processor over a 1008 px ViT).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from labeler.models import check_input_size, load_segmenter, refuse_too_thin, resized_size
from tests.labeler.test_released_grounding_dino import RELEASED_PREPROCESSOR

# facebook/sam-vit-base and facebook/sam-vit-huge preprocessor_config.json (the same file in
# both, written by transformers 4.29's convert_sam_to_hf.py: SamImageProcessor() defaults);
# the released folders have no processor_config.json.
SAM_PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "SamImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "pad_size": {"height": 1024, "width": 1024},
    "processor_class": "SamProcessor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 1024},
}
# Their config.json: vision_config.image_size and prompt_encoder_config.image_size.
SAM_IMAGE_SIZE = 1024

# facebook/sam2.1-hiera-tiny (and -small, -base-plus, -large) config.json: model_type
# sam2_video, its sizes; the processor is Sam2ImageProcessorFast() (convert_sam2_to_hf.py).
SAM2_CONFIG = {
    "model_type": "sam2_video",
    "image_size": 1024,
    "prompt_encoder_config": {"image_size": 1024, "patch_size": 16},
    "vision_config": {
        "model_type": "sam2_vision_model",
        "backbone_config": {"model_type": "sam2_hiera_det_model", "image_size": [1024, 1024]},
    },
}
SAM2_PROCESSOR_SIZE = {"height": 1024, "width": 1024}
# The layout that conversion wrote with transformers 4.56 (the released config.json's
# transformers_version): a preprocessor_config.json naming the Fast class, no
# processor_config.json (the released file itself was not found; these are its defaults).
SAM2_LEGACY_PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "Sam2ImageProcessorFast",
    "image_std": [0.229, 0.224, 0.225],
    "mask_size": {"height": 256, "width": 256},
    "processor_class": "Sam2VideoProcessor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": SAM2_PROCESSOR_SIZE,
}

# facebook/sam3 processor_config.json, as released (its image_processor part; the processor
# also holds the CLIP tokenizer), and the ViT's image_size in its config.json (detector_config,
# which Sam3Model reads from the sam3_video config).
SAM3_IMAGE_PROCESSOR = {
    "crop_size": None,
    "data_format": "channels_first",
    "device": None,
    "disable_grouping": None,
    "do_center_crop": None,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": None,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Sam3ImageProcessor",
    "image_seq_length": None,
    "image_std": [0.5, 0.5, 0.5],
    "input_data_format": None,
    "mask_size": {"height": 288, "width": 288},
    "pad_size": None,
    "processor_class": "Sam3VideoProcessor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "return_tensors": None,
    "size": {"height": 1008, "width": 1008},
}
SAM3_VISION = {
    "model_type": "sam3_vision_model",
    "backbone_config": {"model_type": "sam3_vit_model", "image_size": 1008, "patch_size": 14},
}

# IDEA-Research/grounding-dino-tiny preprocessor_config.json: its resize settings (the same
# GroundingDinoImageProcessor() defaults convert_grounding_dino_to_hf.py and
# convert_mm_grounding_dino_to_hf.py save, checked there against T.Resize(800, max_size=1333)).
DINO_SIZE = {"longest_edge": 1333, "shortest_edge": 800}


def _write(folder: Path, name: str, doc: dict) -> None:
    (folder / name).write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _sam3_image_processor(tmp_path: Path):
    """The released SAM 3 image processor, read back as ``Sam3Processor`` reads it."""
    from transformers import Sam3ImageProcessor

    folder = tmp_path / "sam3"
    folder.mkdir()
    doc = {"image_processor": SAM3_IMAGE_PROCESSOR, "processor_class": "Sam3Processor"}
    _write(folder, "processor_config.json", doc)
    return Sam3ImageProcessor.from_pretrained(folder)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """Folders in the released layout: a random model with the released input size (the
    weights' shapes do not depend on it) and the released processor files. SAM and SAM-HQ: the
    released preprocessor_config.json in place of the processor_config.json a transformers 5
    save writes; SAM 2.1: the released sizes in config.json and the processor its conversion
    saves; SAM 3: the released sam3_video layout and processor_config.json's image processor."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    from labeler.testing import save_tiny_segmenter
    from labeler.testing_sam3 import save_tiny_sam3

    root = tmp_path_factory.mktemp("released")
    folders = {}
    for kind, processor_class in (("sam", "SamProcessor"), ("sam_hq", "SamHQProcessor")):
        folder = save_tiny_segmenter(root / kind, kind, image_size=1024)
        (folder / "processor_config.json").unlink()
        doc = dict(SAM_PREPROCESSOR, processor_class=processor_class)
        _write(folder, "preprocessor_config.json", doc)
        folders[kind] = folder

    folder = folders["sam2_video"] = save_tiny_segmenter(root / "sam2_video", "sam2_video")
    config = json.loads((folder / "config.json").read_text())
    config["image_size"] = SAM2_CONFIG["image_size"]
    config["prompt_encoder_config"].update(SAM2_CONFIG["prompt_encoder_config"])
    config["vision_config"]["backbone_config"].update(
        SAM2_CONFIG["vision_config"]["backbone_config"]
    )
    config["vision_config"]["backbone_feature_sizes"] = [[256, 256], [128, 128], [64, 64]]
    _write(folder, "config.json", config)
    (folder / "processor_config.json").unlink()
    video = Sam2VideoVideoProcessor()
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(), video_processor=video).save_pretrained(
        folder
    )

    legacy = folders["sam2_legacy"] = root / "sam2_legacy"
    shutil.copytree(folder, legacy)
    (legacy / "processor_config.json").unlink()
    _write(legacy, "preprocessor_config.json", SAM2_LEGACY_PREPROCESSOR)

    folder = folders["sam3"] = save_tiny_sam3(root / "sam3", image_size=1008)
    # the released layout: a sam3_video config nesting the image model's under detector_config,
    # its weights under detector_model. (the tracker's, unused here, under tracker_model.)
    detector = json.loads((folder / "config.json").read_text())
    video = {"architectures": ["Sam3VideoModel"], "model_type": "sam3_video"}
    _write(folder, "config.json", dict(video, detector_config=detector))
    weights = load_file(folder / "model.safetensors")
    weights = {f"detector_model.{k}": v for k, v in weights.items()}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    doc = json.loads((folder / "processor_config.json").read_text())
    doc["image_processor"] = SAM3_IMAGE_PROCESSOR
    _write(folder, "processor_config.json", doc)
    return folders


@pytest.mark.parametrize("kind", ["sam", "sam_hq"])
def test_a_released_sam_folder_loads(released, kind):
    """facebook/sam-vit-* (and syscv-community/sam-hq-vit-*, SamImageProcessor() too): the
    released preprocessor_config.json over a model reading the released 1024 px loads, its
    processor the released one (longest side 1024, padded to 1024x1024)."""
    config = json.loads((released[kind] / "config.json").read_text())
    assert config["vision_config"]["image_size"] == SAM_IMAGE_SIZE
    assert config["prompt_encoder_config"]["image_size"] == SAM_IMAGE_SIZE
    seg = load_segmenter(str(released[kind]))
    proc = seg.processor.image_processor
    assert (proc.size.longest_edge, proc.pad_size.height, proc.pad_size.width) == (1024,) * 3


def test_the_released_sam_processor_over_another_models_size_is_refused(tmp_path):
    """The released SAM processor in a folder whose model reads 64 px (a model's files mixed
    with another's) is refused at load, naming both sizes."""
    from labeler.testing import save_tiny_segmenter

    folder = save_tiny_segmenter(tmp_path / "sam", "sam")
    (folder / "processor_config.json").unlink()
    _write(folder, "preprocessor_config.json", SAM_PREPROCESSOR)
    with pytest.raises(ValueError) as err:
        load_segmenter(str(folder))
    said = str(err.value)
    expected = f"{folder}: its processor makes 1024x1024 px inputs and its model reads 64x64 px"
    assert said.startswith(expected), said


@pytest.mark.parametrize("layout", ["sam2_video", "sam2_legacy"])
def test_a_released_sam2_folder_loads(released, layout):
    """facebook/sam2.1-hiera-*: model_type sam2_video at the released 1024 px, with the
    processor its conversion saves (``Sam2ImageProcessorFast()``: 1024x1024, the installed
    default), saved by transformers 5 or in the 4.56 layout, loads as SAM 2."""
    seg = load_segmenter(str(released[layout]))
    assert seg.model.config.prompt_encoder_config.image_size == 1024  # what the check reads
    proc = seg.processor.image_processor
    assert {"height": proc.size.height, "width": proc.size.width} == SAM2_PROCESSOR_SIZE


def test_a_released_sam3_folder_loads(released):
    """facebook/sam3: a sam3_video config.json (the image model's under detector_config) and
    its released processor_config.json (1008x1008) over a ViT reading the released 1008 px
    loads, every weight read (``Sam3Config.vision_config.image_size`` is the backbone's)."""
    import torch
    from safetensors.torch import load_file
    from transformers import Sam3Config

    from labeler.sam3 import load_sam3

    assert Sam3Config(vision_config=SAM3_VISION).vision_config.image_size == 1008
    loaded = load_sam3(str(released["sam3"]))
    assert loaded.model_type == "sam3_video"
    assert loaded.model.config.vision_config.image_size == 1008
    weights = load_file(released["sam3"] / "model.safetensors")
    got = loaded.model.state_dict()
    assert got and all(torch.equal(v, weights[f"detector_model.{k}"]) for k, v in got.items())
    proc = loaded.processor.image_processor
    assert (proc.size.height, proc.size.width) == (1008, 1008)


def test_released_processors_swapped_between_sam_2_and_sam_3_are_refused(tmp_path):
    """The two released frames differ by 16 px (SAM 2's 1024, SAM 3's 1008): either processor
    over the other's model is refused, in one line."""
    from transformers import Sam2ImageProcessor

    sam3 = SimpleNamespace(image_processor=_sam3_image_processor(tmp_path))
    with pytest.raises(
        ValueError,
        match=r"^m: its processor makes 1008x1008 px inputs and its model reads 1024x1024 px",
    ):
        check_input_size("m", sam3, 1024)
    sam2 = SimpleNamespace(image_processor=Sam2ImageProcessor())
    with pytest.raises(
        ValueError,
        match=r"^m: its processor makes 1024x1024 px inputs and its model reads 1008x1008 px",
    ):
        check_input_size("m", sam2, 1008)


def test_the_released_grounding_dino_resize_and_its_thin_image_limit():
    """IDEA-Research/grounding-dino-tiny / -base and the MM-Grounding-DINO conversions: short
    side 800, long side at most 1333; an image keeps a pixel across while its long side is
    under 2666 (2 x 1333) times its short side, as the detector's refusal says."""
    from transformers import GroundingDinoImageProcessor

    from labeler.models import ImageTooThin, preprocess

    proc = GroundingDinoImageProcessor(size=DINO_SIZE)
    assert GroundingDinoImageProcessor().size.shortest_edge == DINO_SIZE["shortest_edge"]
    assert GroundingDinoImageProcessor().size.longest_edge == DINO_SIZE["longest_edge"]
    assert resized_size(proc, 2160, 3840)[:2] == (750, 1333)  # a 4K photo
    assert resized_size(proc, 1, 2665)[:2] == (1, 2665)
    got = preprocess(proc, np.zeros((1, 2665, 3), np.uint8))["pixel_values"]
    assert tuple(got.shape[-2:]) == (1, 2665)
    refuse_too_thin(proc, (1, 2665, 3), "x.png", "detector")  # kept
    with pytest.raises(ImageTooThin, match="long side is under 2666 times its short side"):
        refuse_too_thin(proc, (1, 2666, 3), "x.png", "detector")


def _detector_with_preprocessor(
    tmp_path: Path, image_processor_type: str, processor_class: str = "GroundingDinoProcessor"
) -> Path:
    """A tiny detector in the released layout: preprocessor_config.json (the released resize)
    and the tokenizer files, no processor_config.json."""
    from labeler.testing import save_tiny_detector

    folder = save_tiny_detector(tmp_path / "det")
    (folder / "processor_config.json").unlink()
    doc = {
        **RELEASED_PREPROCESSOR,  # its size: DINO_SIZE
        "image_processor_type": image_processor_type,
        "processor_class": processor_class,
    }
    _write(folder, "preprocessor_config.json", doc)
    return folder


def test_a_detector_folder_in_the_released_layout_loads(tmp_path):
    """preprocessor_config.json beside the tokenizer files (no processor_config.json), as
    IDEA-Research/grounding-dino-tiny ships: the processor is Grounding DINO's, 800/1333."""
    from labeler.models import load_detector

    det = load_detector(str(_detector_with_preprocessor(tmp_path, "GroundingDinoImageProcessor")))
    size = det.processor.image_processor.size
    assert (size.shortest_edge, size.longest_edge) == (800, 1333)
    assert det.processor.tokenizer is not None


@pytest.mark.parametrize(
    "image_processor_type", ["GroundingDINOImageProcessor", "DeformableDetrImageProcessor"]
)
def test_a_detector_whose_processor_names_transformers_does_not_know_is_refused(
    tmp_path, image_processor_type
):
    """The two stored versions of a copy of grounding-dino-tiny's files name
    ``GroundingDINOProcessor`` with ``GroundingDINOImageProcessor`` or
    ``DeformableDetrImageProcessor`` (pre-release names; convert_grounding_dino_to_hf.py at
    commit 033d903 saved the latter in the former): transformers 5.25's AutoProcessor returns
    the BERT tokenizer alone. Refused at load in one line naming the folder and the files;
    before, it loaded, and the label run failed at setup with "BertTokenizer has no attribute
    tokenizer"."""
    from labeler.models import load_detector

    folder = _detector_with_preprocessor(tmp_path, image_processor_type, "GroundingDINOProcessor")
    with pytest.raises(ValueError) as err:
        load_detector(str(folder))
    said = str(err.value)
    assert said.startswith(f"{folder}: its processor files load as a BertTokenizer alone"), said
    assert "preprocessor_config.json" in said and "\n" not in said, said


@pytest.mark.parametrize("processor_file", [None, {"image_processor_type": "SAMImageProcessor"}])
def test_a_segmenter_folder_whose_processor_files_do_not_load_names_them(
    released, tmp_path, processor_file
):
    """A released-layout SAM folder whose preprocessor_config.json is missing or names a class
    transformers does not know: its weights loaded, so the line names the processor files;
    before, it said "segmenter weights not found: looked in the local path ..." with a fix to
    pass a folder holding config.json and the weights, which it did."""
    import shutil

    folder = tmp_path / "sam"
    shutil.copytree(released["sam"], folder)
    (folder / "preprocessor_config.json").unlink()
    if processor_file is not None:
        _write(folder, "preprocessor_config.json", dict(SAM_PREPROCESSOR, **processor_file))
    with pytest.raises(ValueError) as err:
        load_segmenter(str(folder))
    said = str(err.value)
    assert said.startswith(f"{folder}: cannot read the segmenter's processor files ("), said
    assert "weights not found" not in said and "\n" not in said, said
    assert "processor_config.json or preprocessor_config.json" in said, said


def test_a_sam3_folder_without_its_processor_file_names_it(released, tmp_path):
    """The released SAM 3 folder without processor_config.json: the weights loaded, so the
    line names the processor files; before, it said "model weights not found" and how to get
    the gated weights."""
    import shutil

    from labeler.sam3 import load_sam3

    folder = tmp_path / "sam3"
    shutil.copytree(released["sam3"], folder)
    (folder / "processor_config.json").unlink()
    with pytest.raises(ValueError) as err:
        load_sam3(str(folder))
    said = str(err.value)
    assert said.startswith(f"{folder}: cannot read the model's processor files ("), said
    assert "weights not found" not in said and "\n" not in said, said
