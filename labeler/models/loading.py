"""Loading Grounding DINO and SAM / SAM-HQ / SAM 2 through transformers as a
:class:`LoadedModel` (the model with its processor and where it came from)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labeler.config import check_docstrings_kept
from labeler.models.hub import hub_commit
from labeler.models.sizes import check_input_size
from labeler.models.weights import _from_pretrained, _load_config

# model_type values of checkpoints the segmenter accepts. SAM 2 / 2.1 hub repos
# (facebook/sam2.1-hiera-large, ...) say "sam2_video"; transformers maps that type to Sam2Model
# for mask generation (AutoModelForMaskGeneration), ignoring the video-memory weights.
SEGMENTER_TYPES = ("sam", "sam_hq", "sam2", "sam2_video")

DETECTOR_TYPES = ("grounding-dino", "mm-grounding-dino")


@dataclass
class LoadedModel:
    """A model with its processor and where it came from."""

    model: Any  # the torch module, eval mode, on its device
    processor: Any  # the transformers processor saved with it
    source: str  # hub id, local directory or .pth file as given
    model_type: str  # config.model_type, e.g. "grounding-dino", "sam", "sam_hq"
    revision: str | None  # resolved hub commit when known

    @classmethod
    def ready(
        cls,
        model: Any,
        processor: Any,
        source: str,
        config: Any,
        device: Any,
        revision: str | None = None,
    ) -> LoadedModel:
        """``model`` moved to ``device`` in eval mode, with its type from its ``config`` and, for
        a hub id, the commit its files came from (``revision`` as asked: a branch, tag or
        commit)."""
        return cls(
            model.to(device).eval(),
            processor,
            source,
            config.model_type,
            hub_commit(source, revision),
        )

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "class": type(self.model).__name__,
            "model_type": self.model_type,
            "revision": self.revision,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


def load_detector(
    source: str, revision: str | None = None, device: str = "cpu", local_only: bool = False
) -> LoadedModel:
    """Grounding DINO (or MM-Grounding-DINO / LLMDet) from a hub id or local directory."""
    check_docstrings_kept()
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    config = _load_config("detector", source, revision, local_only)
    if config.model_type not in DETECTOR_TYPES:
        raise ValueError(
            f"{source}: detector must be a Grounding DINO checkpoint (model_type one of "
            f"{', '.join(DETECTOR_TYPES)}), got model_type {config.model_type!r}"
        )
    model = _from_pretrained(
        "detector", AutoModelForZeroShotObjectDetection, source, revision, local_only
    )
    processor = _from_pretrained(
        "detector", AutoProcessor, source, revision, local_only, processor=True
    )
    if not hasattr(processor, "image_processor"):  # AutoProcessor fell back to one part
        import transformers

        raise ValueError(
            f"{source}: its processor files load as a {type(processor).__name__} alone, not "
            "Grounding DINO's processor (image processor and tokenizer): the processor_class "
            "or image_processor_type in preprocessor_config.json or processor_config.json is "
            f"not a name transformers {transformers.__version__} knows for it "
            "(GroundingDinoProcessor, GroundingDinoImageProcessor); restore the files saved "
            "with the model"
        )
    return LoadedModel.ready(model, processor, source, config, device, revision)


def load_segmenter(
    source: str,
    revision: str | None = None,
    device: str = "cpu",
    local_only: bool = False,
    option: str = "--segmenter",
) -> LoadedModel:
    """SAM, SAM-HQ or SAM 2, chosen from the checkpoint's ``model_type``; a ``.pth`` file is an original
    segment-anything checkpoint, converted in memory (see :mod:`labeler.sam_convert`).
    ``option``: the one that gave ``source``, which a weights-not-found error tells to give."""
    check_docstrings_kept()
    if source.endswith(".pth"):
        from labeler.sam_convert import load_sam_pth

        model, processor = load_sam_pth(source)
        return LoadedModel(model.to(device).eval(), processor, source, "sam", None)
    from transformers import AutoProcessor, Sam2Model, SamHQModel, SamModel

    config = _load_config("segmenter", source, revision, local_only, option)
    classes = {"sam": SamModel, "sam_hq": SamHQModel, "sam2": Sam2Model, "sam2_video": Sam2Model}
    if config.model_type not in classes:
        raise ValueError(
            f"{source}: segmenter must be a SAM, SAM-HQ or SAM 2 image checkpoint (model_type "
            f"{', '.join(SEGMENTER_TYPES)}), got model_type {config.model_type!r}"
        )
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    if config.model_type == "sam2_video":  # its "sam2_video into Sam2Model" note is expected
        hf_logging.set_verbosity_error()
    try:
        model = _from_pretrained(
            "segmenter", classes[config.model_type], source, revision, local_only, option
        )
    finally:
        hf_logging.set_verbosity(level)
    processor = _from_pretrained(
        "segmenter", AutoProcessor, source, revision, local_only, option, processor=True
    )
    check_input_size(source, processor, model.config.prompt_encoder_config.image_size)
    return LoadedModel.ready(model, processor, source, config, device, revision)
