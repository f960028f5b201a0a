"""Training loop: lr schedule, config loading, param groups, exact resume, non-finite loss."""

from __future__ import annotations

import json
import math

import pytest
import torch

from engine.datasets import load_spec
from tests.trainer._train_stub import StubModel, write_dataset
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig, load_config, lr_factor
from trainer.data import AugmentConfig
from trainer.losses import DecouplingConfig, LossConfig
from trainer.train import NonFiniteLossError, param_groups, train


@pytest.mark.parametrize(
    ("step", "iters", "warmup", "floor", "expected"),
    [
        (0, 10, 0, 0.0, 1.0),
        (5, 10, 0, 0.0, 0.5),
        (10, 10, 0, 0.0, 0.0),
        (5, 10, 0, 0.2, 0.6),
        (0, 10, 2, 0.0, 0.5),
        (1, 10, 2, 0.0, 1.0),
        (2, 10, 2, 0.0, 1.0),
        (6, 10, 2, 0.0, 0.5),
        (50, 10, 0, 0.0, 0.0),  # past the end: stays at the floor
        (3, 3, 2, 0.0, 0.0),  # a one-step cosine after the warmup ends at the floor at iters
        (3, 3, 2, 0.25, 0.25),
    ],
)
def test_lr_factor(step, iters, warmup, floor, expected):
    assert math.isclose(lr_factor(step, iters, warmup, floor), expected, abs_tol=1e-12)


def test_lr_factor_defaults_are_no_warmup_and_a_floor_of_0():
    assert [lr_factor(s, 4) for s in range(5)] == pytest.approx(
        [1.0, 0.5 + 0.5**1.5, 0.5, 0.5 - 0.5**1.5, 0.0]
    )


def test_config_values_of_another_type_or_range_are_named(tmp_path):
    """A mistyped value failed deep in the run with Python's words (``lr: 3e-3``, a string to
    YAML: "'>' not supported between instances of 'str' and 'int'"; ``augment: 64``: a
    traceback), or was taken (``log_every: 0`` divided by zero after the first step)."""
    f = tmp_path / "c.yaml"
    f.write_text("lr: 3e-3\nval_size: 192x144\naugment: {crop: 64, short_side_range: [96, 160]}\n")
    cfg = load_config(f)
    assert (
        cfg.lr == 0.003 and cfg.val_size == (192, 144) and cfg.augment.short_side_range == (96, 160)
    )
    for text, msg in (
        ("augment: 64\n", "c.yaml.augment: expected a mapping of keys, got 64"),
        ("loss: [1]\n", "c.yaml.loss: expected a mapping of keys, got [1]"),
        ("betas: 0.9\n", "c.yaml: betas must be a list of 2 values, got 0.9"),
        ("iters: 2.5\n", "c.yaml: iters must be a whole number, got 2.5"),
        ("lr: fast\n", "c.yaml: lr must be a number, got 'fast'"),
        ("amp: 1\n", "c.yaml: amp must be true or false, got 1"),
        ("val_size: big\n", "c.yaml: val_size must be a list of 2 values, got 'big'"),
        ("augment: {crop: 6.5}\n", "c.yaml.augment: crop must be a whole number, got 6.5"),
        ("log_every: 0\n", "c.yaml: log_every must be >= 1, got 0"),
        ("val_every: -5\n", "c.yaml: val_every must be >= 0, got -5"),
        ("threads: -1\n", "c.yaml: threads must be >= 0, got -1"),
        # fuzzed, round 47: torch's "Invalid beta parameter at index 1: -1.999", no file named
        ("betas: [0.9, -1.999]\n", "c.yaml: betas must be in [0, 1), got [0.9, -1.999]"),
        ("betas: [1.0, 0.999]\n", "c.yaml: betas must be in [0, 1), got [1.0, 0.999]"),
        (  # torch's "Overflow when unpacking long long" at the first step, a traceback
            "loss: {num_points: 9223372036854775808}\n",
            "c.yaml.loss: num_points x oversample must be at most 1,048,576 (1024 x 1024), "
            "got 9223372036854775808 x 3.0",
        ),
    ):
        f.write_text(text)
        with pytest.raises(ValueError) as err:
            load_config(f)
        assert str(err.value) == str(tmp_path / msg)


def test_config_strict_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("iters: 7\naugment: {crop: 64}\nloss: {decoupling: {pseudo_class_weight: 0.5}}\n")
    cfg = load_config(f, batch_size=4, preset=None)
    assert cfg.iters == 7 and cfg.augment.crop == 64 and cfg.batch_size == 4
    assert cfg.loss.decoupling.pseudo_class_weight == 0.5 and cfg.preset == "massformer_r50"
    f.write_text("iters: 7\naugment: {crops: 64}\n")
    with pytest.raises(
        ValueError, match=r"augment: unknown keys \['crops'\] \(did you mean 'crop'"
    ):
        load_config(f)
    f.write_text("itres: 7\n")  # the near miss named before the forty keys
    with pytest.raises(ValueError, match=r"unknown keys \['itres'\] \(did you mean 'iters'\?\)"):
        load_config(f)
    f.write_text("batch-size: 4\n")  # the option's spelling
    with pytest.raises(ValueError, match=r"\(did you mean 'batch_size'\?\)"):
        load_config(f)
    for text in ("lr: .inf\n", "weight_decay: .nan\n", "betas: [0.9, .inf]\n"):
        f.write_text(text)  # .nan passed every range check, .inf trained to a NaN loss
        with pytest.raises(ValueError, match="must be a finite number, got"):
            load_config(f)
    f.write_text("seed: -1\n")
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        load_config(f)
    f.write_text("val_split: none\n")  # as --val-split none (it was a split named 'none')
    assert load_config(f).val_split == ""
    f.write_text("seed: 4294967296\n")  # numpy's "Seed must be between 0 and 2**32 - 1"
    with pytest.raises(ValueError, match=r"c.yaml: seed must be <= 4294967295 \(2\*\*32 - 1\)"):
        load_config(f)
    f.write_text("colour: 7\n")  # nothing close: no guess
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]; known"):
        load_config(f)
    with pytest.raises(ValueError, match="not divisible"):
        TrainConfig(batch_size=3, accum_steps=2)
    f.write_text("backbone_norm: group\n")
    with pytest.raises(ValueError, match="backbone_norm must be 'frozen' or 'batch', got 'group'"):
        load_config(f)
    # a value the config refuses is named with the file it came from, nested keys with their path
    for text, msg in (
        ("lr: 0\n", "c.yaml: lr must be > 0, got 0"),
        ("loss: {num_points: 0}\n", "c.yaml.loss: num_points >= 1"),
    ):
        f.write_text(text)
        with pytest.raises(ValueError) as err:
            load_config(f)
        assert str(err.value).startswith(str(tmp_path / msg))


# each bound of TrainConfig at its edge: (setting accepted, setting refused, the refusal)
EDGES = [
    *[  # _LOWEST's table: the lowest value taken, the one below refused
        ({k: low}, {k: low - 1}, f"{k} must be >= {low}, got {low - 1}")
        for k, low in (
            ("num_workers", -1),
            ("threads", 0),
            ("val_every", 0),
            ("val_max_images", 0),
            ("checkpoint_every", 1),
            ("keep_every", 0),
            ("log_every", 1),
            ("max_steps_this_run", 0),
            ("seed", 0),
        )
    ],
    *[
        ({k: 0.0}, {k: -0.5}, f"{k} must be >= 0, got -0.5")
        for k in ("grad_clip", "weight_decay", "backbone_lr_mult")
    ],
    *[
        (
            {k: 1, "batch_size": 1} if k == "accum_steps" else {k: 1},
            {k: 0},
            f"{k} must be >= 1, got 0",
        )
        for k in ("iters", "batch_size", "accum_steps")
    ],
    ({"processes": 0}, {"processes": -1}, "processes must be >= 0 (0: one per CPU core), got -1"),
    ({"lr": 1e-12}, {"lr": 0.0}, "lr must be > 0, got 0.0"),
    ({"lr": 1e3}, {"lr": math.inf}, "lr must be a finite number, got inf"),
    ({"grad_clip": 1e300}, {"grad_clip": math.nan}, "grad_clip must be a finite number, got nan"),
    (
        {"weight_decay": 0.0},
        {"weight_decay": math.inf},
        "weight_decay must be a finite number, got inf",
    ),
    (
        {"backbone_lr_mult": 0.0},
        {"backbone_lr_mult": math.nan},
        "backbone_lr_mult must be a finite number, got nan",
    ),
    ({"betas": (0.0, 0.0)}, {"betas": (-0.1, 0.9)}, "betas must be in [0, 1), got [-0.1, 0.9]"),
    ({"betas": (0.9, 0.9999)}, {"betas": (0.9, 1)}, "betas must be in [0, 1), got [0.9, 1.0]"),
    (
        {"batch_size": 6, "accum_steps": 3},
        {"batch_size": 6, "accum_steps": 4},
        "batch_size 6 is not divisible by accum_steps 4",
    ),
    (
        {"iters": 5, "warmup_iters": 4},
        {"iters": 5, "warmup_iters": 5},
        "warmup_iters must be in 0..iters-1, got 5",
    ),
    ({"warmup_iters": 0}, {"warmup_iters": -1}, "warmup_iters must be in 0..iters-1, got -1"),
    ({"min_lr_ratio": 0.0}, {"min_lr_ratio": -0.1}, "min_lr_ratio must be in 0..1, got -0.1"),
    ({"min_lr_ratio": 1.0}, {"min_lr_ratio": 1.5}, "min_lr_ratio must be in 0..1, got 1.5"),
    (
        {"seed": 2**32 - 1},
        {"seed": 2**32},
        "seed must be <= 4294967295 (2**32 - 1), got 4294967296",
    ),
    # a Python caller's nan or inf in an int field passed every check (nan < 1 is False):
    # log_every=nan never logged, unsaid; a float that is no whole number is refused as a
    # file's is, one that is (8e4, 5.0) taken as before
    ({"log_every": 5.0}, {"log_every": math.nan}, "log_every must be a finite number, got nan"),
    (
        {"checkpoint_every": 8e4},
        {"checkpoint_every": math.inf},
        "checkpoint_every must be a finite number, got inf",
    ),
    ({"val_every": 0.0}, {"val_every": math.nan}, "val_every must be a finite number, got nan"),
    ({"log_every": 2.0}, {"log_every": 2.5}, "log_every must be a whole number, got 2.5"),
    ({"seed": 7.0}, {"seed": -math.inf}, "seed must be a finite number, got -inf"),
]


@pytest.mark.parametrize(("taken", "refused", "said"), EDGES)
def test_each_config_bound_takes_its_edge_and_refuses_the_next_value(taken, refused, said):
    """Every check of ``TrainConfig.__post_init__`` at its edge; the file-level test above sees
    only a few values far from them (``log_every: 0``, ``val_every: -5``)."""
    cfg = TrainConfig(**taken)
    assert all(getattr(cfg, k) == v for k, v in taken.items())
    with pytest.raises(ValueError) as err:
        TrainConfig(**refused)
    assert str(err.value) == said


def test_a_non_finite_value_is_refused_whatever_the_field_s_type_says():
    """The check reads values, not type strings: a field typed ``float | None`` (a subclass's,
    as a future field would be) is checked too; before, only fields typed exactly "float"."""
    import dataclasses

    @dataclasses.dataclass
    class Later(TrainConfig):
        margin: float | None = None

    assert Later(margin=None).margin is None and Later(margin=0.5).margin == 0.5
    with pytest.raises(ValueError) as err:
        Later(margin=math.inf)
    assert str(err.value) == "margin must be a finite number, got inf"


def test_config_normalises_betas_val_size_and_a_val_split_named_none():
    cfg = TrainConfig(betas=[0, 0.5], val_size=[640.0, 480], val_split=" None ")
    assert cfg.betas == (0.0, 0.5) and type(cfg.betas[0]) is float
    assert cfg.val_size == (640, 480) and type(cfg.val_size[0]) is int and cfg.val_split == ""
    assert TrainConfig(val_size=None, val_split=None).val_size is None


@pytest.mark.parametrize(
    "build, said",
    [
        (lambda: TrainConfig(val_size=[math.nan, 1]),
         "val_size must be WxH with both sides 1 to 1,000,000 pixels, got nanx1"),
        (lambda: TrainConfig(val_size=[2.5, 64]),  # was taken as 2x64
         "val_size must be WxH with both sides 1 to 1,000,000 pixels, got 2.5x64"),
        (lambda: TrainConfig(val_size=[math.inf, 64]),
         "val_size must be WxH with both sides 1 to 1,000,000 pixels, got infx64"),
        (lambda: TrainConfig(betas=[0.9]), "betas must be two numbers, got [0.9]"),
        (lambda: AugmentConfig(flip=math.nan), "flip must be a finite number, got nan"),
        (lambda: AugmentConfig(crop_tries=math.inf), "crop_tries must be a finite number, got inf"),
        (lambda: AugmentConfig(crop=512.5), "crop must be a whole number, got 512.5"),
        (lambda: LossConfig(dice_weight=-math.inf), "dice_weight must be a finite number, got -inf"),
        (lambda: DecouplingConfig(pseudo_scale=math.nan),
         "pseudo_scale must be a finite number, got nan"),
    ],
)  # fmt: skip
def test_nested_configs_and_val_size_built_from_python_are_checked_by_value(build, said):
    """A Python caller's nan, inf or fraction in AugmentConfig / LossConfig / DecouplingConfig
    was taken (a file's is refused as it is read): a NaN flip probability, loss weight or
    boundary gain trained on; TrainConfig(val_size=[nan, 1]) said Python's "cannot convert
    float NaN to integer", and a single beta failed in torch's AdamW."""
    with pytest.raises(ValueError) as e:
        build()
    assert str(e.value) == said


def test_a_nested_config_changed_after_it_was_built_is_named_under_its_key():
    augment, loss = AugmentConfig(), LossConfig()
    augment.cat_max_ratio = math.nan
    with pytest.raises(ValueError) as e:
        TrainConfig(augment=augment)
    assert str(e.value) == "augment: cat_max_ratio must be a finite number, got nan"
    loss.decoupling.boundary_gain = math.inf
    with pytest.raises(ValueError) as e:
        TrainConfig(loss=loss)
    assert str(e.value) == "loss.decoupling: boundary_gain must be a finite number, got inf"


def test_param_groups_lr_and_decay():
    model = StubModel(3)
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(lr=1e-3))}
    assert groups["backbone_decay"]["lr"] == pytest.approx(1e-4)
    assert groups["head_decay"]["lr"] == pytest.approx(1e-3)
    no_decay = {id(p) for p in groups["head_no_decay"]["params"]}
    assert groups["head_no_decay"]["weight_decay"] == 0.0
    assert id(model.norm.weight) in no_decay and id(model.query_feat.weight) in no_decay
    assert id(model.cls.weight) not in no_decay


def test_param_groups_find_nested_norms_queries_and_level_embeddings_and_skip_frozen():
    """Each parameter in the group its name and module say: a backbone norm's in
    backbone_no_decay, a nested module named like a query and a bare ``level_embed`` parameter
    in head_no_decay, a frozen one in none; backbone lr = lr x backbone_lr_mult."""

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query_proj = torch.nn.Linear(2, 2)
            self.level_embed = torch.nn.Parameter(torch.zeros(3, 2))
            self.cls = torch.nn.Linear(2, 2)

    model = torch.nn.Module()
    model.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2))
    model.backbone.frozen = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    model.decoder = Decoder()
    names = {id(p): n for n, p in model.named_parameters()}
    cfg = TrainConfig(lr=1e-3, backbone_lr_mult=0.25, weight_decay=0.5)
    got = {
        g["name"]: (sorted(names[id(p)] for p in g["params"]), g["lr"], g["weight_decay"])
        for g in param_groups(model, cfg)
    }
    assert got == {
        "backbone_decay": (["backbone.0.bias", "backbone.0.weight"], 2.5e-4, 0.5),
        "backbone_no_decay": (["backbone.1.bias", "backbone.1.weight"], 2.5e-4, 0.0),
        "head_decay": (["decoder.cls.bias", "decoder.cls.weight"], 1e-3, 0.5),
        "head_no_decay": (
            ["decoder.level_embed", "decoder.query_proj.bias", "decoder.query_proj.weight"],
            1e-3,
            0.0,
        ),
    }


def _stub(*args, **kw) -> StubModel:
    torch.manual_seed(0)
    return StubModel(*args, **kw)


def _tiny(num_classes: int):
    from trainer.models import create_model

    torch.manual_seed(0)
    return create_model("tiny", num_classes)


def _files(run) -> dict:
    """Every file of a run folder, subfolders (tensorboard/, where installed) included, and its
    bytes (the lock's record of who held it aside)."""
    files = sorted(p for p in run.rglob("*") if p.is_file() and p.name != ".lock")
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in files}


def _cfg(root, out, **kw):
    base = dict(
        data=str(root),
        out=str(out),
        # the CPU on every machine: "auto" picks CUDA where there is one (the H200 run failed
        # the frozen-BN test: its forward fed a CPU tensor), and CUDA's deformable convolution
        # backward sums with atomics, so bit-identical resumes are a CPU promise
        device="cpu",
        iters=6,
        batch_size=2,
        val_split="",
        num_workers=0,
        progress=False,
        checkpoint_every=2,
        log_every=1,
        lr=1e-2,
        grad_clip=1.0,
        augment={"crop": 24, "short_side_range": [24, 40]},
        loss={"num_points": 64},
    )
    base.update(kw)
    return load_config(None, **base)


def test_resume_continues_with_identical_losses(tmp_path):
    """Stopped at step 3, exactly a keep_every step between two checkpoint_every ones (its
    last.pt and step_0000003.pt written by the keep), and resumed: the losses, the kept
    checkpoints and the final weights of an uninterrupted run, bit for bit."""
    root = write_dataset(tmp_path / "data", sources=True)
    straight = train(_cfg(root, tmp_path / "a", keep_every=3), model=_stub(7))
    assert len(straight.losses) == 6
    first = train(_cfg(root, tmp_path / "b", max_steps_this_run=3, keep_every=3), model=_stub(7))
    assert first.step == 3 and load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3
    # last.pt's step, written beside it for engine info to read without torch
    from engine.runinfo import saved_step

    record = json.loads((tmp_path / "b" / "saved_step.json").read_text())
    assert (record["file"], record["step"], saved_step(tmp_path / "b")) == ("last.pt", 3, 3)
    # named apart from last.pt: a shell completes --checkpoint RUN/last to last.pt, not last.
    assert [p.name for p in (tmp_path / "b").glob("last*")] == ["last.pt"]
    assert [p.name for p in (tmp_path / "b").glob("step_*.pt")] == ["step_0000003.pt"]
    second = train(_cfg(root, tmp_path / "b", resume=True, keep_every=3), model=_stub(7))
    assert first.losses + second.losses == straight.losses  # bit-identical
    for name, step in (("step_0000003.pt", 3), ("step_0000006.pt", 6), ("last.pt", 6)):
        a, b = (load_checkpoint(tmp_path / run / name) for run in ("a", "b"))
        assert a["step"] == b["step"] == step and list(a["model"]) == list(b["model"])
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    assert sorted(p.name for p in (tmp_path / "b").glob("step_*.pt")) == [
        "step_0000003.pt",
        "step_0000006.pt",
    ]
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert saved_step(tmp_path / "b") == saved_step(tmp_path / "a") == 6
    assert (tmp_path / "b" / "resumes.jsonl").is_file()
    assert (tmp_path / "b" / "config.yaml").is_file() and (
        tmp_path / "b" / "environment.json"
    ).is_file()


def test_resume_is_exact_with_the_real_tiny_model(tmp_path):
    from trainer.models import create_model

    def tiny():
        torch.manual_seed(0)
        return create_model("tiny", 7)

    root = write_dataset(tmp_path / "data", sources=True)
    kw = dict(iters=4, augment={"crop": 64, "short_side_range": [64, 96]}, loss={"num_points": 256})
    straight = train(_cfg(root, tmp_path / "a", **kw), model=tiny())
    first = train(_cfg(root, tmp_path / "b", max_steps_this_run=2, **kw), model=tiny())
    second = train(_cfg(root, tmp_path / "b", resume=True, **kw), model=tiny())
    assert first.losses + second.losses == straight.losses
    assert second.losses[0] != straight.losses[0]  # the losses do move


def test_a_resume_builds_the_network_its_checkpoint_records(tmp_path, monkeypatch):
    """A preset whose widths changed since the run began (massformer_lite_r18 in the
    thirty-first round) must not break the run: the resume builds the checkpoint's network,
    and continues with the losses of an uninterrupted run."""
    import dataclasses

    from trainer.models import MODEL_PRESETS

    root = write_dataset(tmp_path / "data", sources=True)
    kw = dict(iters=4, augment={"crop": 64, "short_side_range": [64, 96]}, loss={"num_points": 256})
    kw |= dict(preset="tiny", backbone_weights="none")
    straight = train(_cfg(root, tmp_path / "a", **kw))  # the model is seeded by cfg.seed
    first = train(_cfg(root, tmp_path / "b", max_steps_this_run=2, **kw))
    wider = dataclasses.replace(MODEL_PRESETS["tiny"], hidden_dim=128, ffn_dim=512)
    monkeypatch.setitem(MODEL_PRESETS, "tiny", wider)
    second = train(_cfg(root, tmp_path / "b", resume=True, **kw))
    assert first.losses + second.losses == straight.losses
    saved = load_checkpoint(tmp_path / "b" / "last.pt")["model_config"]
    assert saved["hidden_dim"] == 96 and second.step == 4


def test_training_leaves_the_callers_random_generators_as_they_were(tmp_path):
    """Called from Python, train() seeded Python's, NumPy's and torch's global generators with
    ``cfg.seed`` and drew from them: the caller's own random numbers after the call were the
    same every time, whatever it had seeded. Refused calls leave them alone too."""
    import random

    import numpy as np

    root = write_dataset(tmp_path / "data", sources=True)

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    def seed():
        random.seed(5)
        np.random.seed(5)
        torch.manual_seed(5)

    model = _stub(7)  # seeds torch itself
    seed()
    expected = draws()
    seed()
    train(_cfg(root, tmp_path / "a", iters=2), model=model)
    assert draws() == expected
    seed()
    with pytest.raises(FileExistsError):
        train(_cfg(root, tmp_path / "a", iters=2), model=model)
    assert draws() == expected


def test_training_computes_as_the_cli_whatever_torch_defaults_the_caller_set(tmp_path):
    """A notebook's ``torch.set_default_dtype(torch.float64)`` built a float64 network that
    stopped in its loss ("Index put requires the source and destination dtypes match"); a
    caller's ``torch.set_grad_enabled(False)`` or ``torch.inference_mode()`` stopped the first
    step ("element 0 of tensors does not require grad"). Now the run is the one a fresh process
    trains, bit for bit, and the caller's settings are back when the call returns."""
    root = write_dataset(tmp_path / "data")
    kw = dict(iters=1, checkpoint_every=1)
    fresh = train(_cfg(root, tmp_path / "fresh", **kw), model=_stub(7)).losses
    model = _stub(7)  # the caller's network, built as the fresh one
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.inference_mode():  # grad mode off, too
            assert train(_cfg(root, tmp_path / "caller", **kw), model=model).losses == fresh
            assert torch.is_inference_mode_enabled() and not torch.is_grad_enabled()
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(before)
    weights = [load_checkpoint(tmp_path / r / "last.pt")["model"] for r in ("fresh", "caller")]
    assert {t.dtype for t in weights[1].values()} == {torch.float32}
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_model_the_caller_built_in_float64_is_refused_in_one_line(tmp_path):
    """A ``model=`` built under ``torch.set_default_dtype(torch.float64)``: before, torch's bare
    "Index put requires the source and destination dtypes match" from the loss, after the run
    folder was made; now one line naming the parameter, before anything is written."""
    root = write_dataset(tmp_path / "data")
    torch.set_default_dtype(torch.float64)
    try:
        model = _stub(7)
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(ValueError) as e:
        train(_cfg(root, tmp_path / "run", iters=1, checkpoint_every=1), model=model)
    assert str(e.value) == (
        "model: parameter backbone.weight is torch.float64; train computes in float32: build "
        "the model under torch's default dtype float32, or pass model.float()"
    )
    assert not (tmp_path / "run").exists()
    assert train(_cfg(root, tmp_path / "run", iters=1), model=model.float()).losses


def test_existing_run_needs_resume_and_resume_needs_same_config(tmp_path):
    root = write_dataset(tmp_path / "data")
    train(_cfg(root, tmp_path / "a", iters=2), model=_stub(7))
    with pytest.raises(FileExistsError, match="--resume"):
        train(_cfg(root, tmp_path / "a", iters=2), model=_stub(7))
    with pytest.raises(ValueError) as e:  # each field named, with both values
        train(
            _cfg(root, tmp_path / "a", iters=4, lr=0.5, resume=True,
                 augment={"crop": 32, "short_side_range": [24, 40]}),
            model=_stub(7),
        )  # fmt: skip
    assert str(e.value) == (
        f"{tmp_path / 'a' / 'last.pt'}: the checkpoint was trained with another config: "
        "augment.crop differs (recorded 24, given 32); lr differs (recorded 0.01, given 0.5); "
        "resume with the recorded settings or start a new --out"
    )
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        train(_cfg(root, tmp_path / "new", resume=True), model=_stub(7))


def test_a_resume_refused_for_its_validation_split_names_none(tmp_path):
    """A run trained with --val-split none, resumed without it: the refusal gives the word to
    type (recorded none), where it read recorded "" (and --val-split "" is no documented value)."""
    root = write_dataset(tmp_path / "data")
    train(_cfg(root, tmp_path / "a", iters=2, val_split=""), model=_stub(7))
    with pytest.raises(ValueError, match=r'val_split differs \(recorded none, given "val"\)'):
        train(_cfg(root, tmp_path / "a", iters=3, val_split="val", resume=True), model=_stub(7))


def test_a_resume_on_labels_changed_since_is_warned(tmp_path, caplog):
    """A label edited (or the dataset fused again with other settings) after the run was
    checkpointed: the resume trains on the new labels after steps on the old ones, and says so,
    naming them. Before, only a changed image count was said: a resume on a dataset whose
    labels had all been fused again went on without a word."""
    from annotations.labelmap import read_label, write_label

    root = write_dataset(tmp_path / "data", n=3)
    train(_cfg(root, tmp_path / "a", iters=4, max_steps_this_run=2), model=_stub(7))
    label = root / "annotations/train/im1.png"
    edited = read_label(label)
    edited[: edited.shape[0] // 2] = 255  # another size of PNG
    write_label(label, edited)
    with caplog.at_level("WARNING", logger="trainer.train"):
        train(
            _cfg(root, tmp_path / "a", iters=4, max_steps_this_run=1, resume=True), model=_stub(7)
        )
    (warning,) = [r.getMessage() for r in caplog.records if "checkpointed" in r.getMessage()]
    assert warning == (
        f"{root / 'annotations' / 'train'}: 1 of 3 training images have another image, label "
        "or source map file (another size) than when the run was checkpointed (im1): fused "
        "again or edited since? the resumed run trains on them as they are now"
    )
    # kept in the run's log at the step it resumed from (engine info shows it): said before the
    # log was cut back to the checkpoint, written after
    events = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [e for e in events if e.get("event") == "warning"] == [
        {"step": 2, "event": "warning", "message": warning}
    ]
    caplog.clear()  # the checkpoint now records the files it trained on since
    with caplog.at_level("WARNING", logger="trainer.train"):
        train(_cfg(root, tmp_path / "a", iters=4, resume=True), model=_stub(7))
    assert not [r for r in caplog.records if "checkpointed" in r.getMessage()]


def test_training_batches_with_no_labelled_pixel_are_warned_once(tmp_path, caplog):
    """A training split whose labels are all 255 (ignore) trained to its end without a word,
    learning nothing: the first batches of a call are looked at, and a warning names the
    labels' folder. A split with labelled pixels warns of nothing."""
    from annotations.labelmap import read_label, write_label

    root = write_dataset(tmp_path / "data", n=3)
    with caplog.at_level("WARNING", logger="trainer.train"):
        train(_cfg(root, tmp_path / "a", iters=3), model=_stub(7))
    assert not [r for r in caplog.records if "no labelled pixel" in r.getMessage()]
    # config.json records the classes the run learns by id (engine info lists them)
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())["taxonomy"]
    assert recorded == load_spec(root).taxonomy.to_dict()
    for label in (root / "annotations/train").glob("*.png"):
        write_label(label, read_label(label) * 0 + 255)
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainer.train"):
        train(_cfg(root, tmp_path / "b", iters=3), model=_stub(7))
    (warning,) = [r.getMessage() for r in caplog.records if "no labelled pixel" in r.getMessage()]
    assert warning == (
        f"{root / 'annotations' / 'train'}: the first 3 training batches of this run hold no "
        "labelled pixel (every label is 255, ignore): the model learns nothing from them; "
        "check the labels"
    )


def test_a_resume_on_a_split_of_another_size_is_warned(tmp_path, caplog):
    from PIL import Image

    root = write_dataset(tmp_path / "data", n=3)
    train(_cfg(root, tmp_path / "a", iters=4, max_steps_this_run=2), model=_stub(7))
    assert load_checkpoint(tmp_path / "a" / "last.pt")["train_images"] == 3
    with caplog.at_level("WARNING", logger="trainer.train"):
        train(
            _cfg(root, tmp_path / "a", iters=5, max_steps_this_run=1, resume=True), model=_stub(7)
        )
    assert not [r for r in caplog.records if "when the run was checkpointed" in r.getMessage()]
    Image.open(root / "images/train/im0.png").save(root / "images/train/im9.png")
    (root / "annotations/train/im9.png").write_bytes(
        (root / "annotations/train/im0.png").read_bytes()
    )
    with caplog.at_level("WARNING", logger="trainer.train"):
        assert train(_cfg(root, tmp_path / "a", iters=5, resume=True), model=_stub(7)).step == 5
    (warning,) = [r.getMessage() for r in caplog.records if "checkpointed" in r.getMessage()]
    assert warning == (
        f"{root / 'images' / 'train'}: split 'train' has 4 images, 3 when the run was "
        "checkpointed; the resumed run draws other samples than an uninterrupted run would"
    )


def test_a_checkpoint_from_before_a_setting_existed_resumes_with_its_default(tmp_path):
    root = write_dataset(tmp_path / "data")
    train(_cfg(root, tmp_path / "a", iters=4, max_steps_this_run=2), model=_stub(7))
    ckpt = load_checkpoint(tmp_path / "a" / "last.pt")
    del ckpt["config"]["freeze_bn_stats"]  # as written before the setting was added
    torch.save(ckpt, tmp_path / "a" / "last.pt")
    assert train(_cfg(root, tmp_path / "a", iters=4, resume=True), model=_stub(7)).step == 4
    with pytest.raises(ValueError, match="freeze_bn_stats differ"):  # not its default: refused
        train(
            _cfg(root, tmp_path / "a", iters=6, resume=True, freeze_bn_stats=True), model=_stub(7)
        )


@pytest.mark.parametrize(
    "damage, said",
    [  # fuzzed, round 47: each was Python's words (a traceback) or named no file
        (lambda c: c["scheduler"].update(iters=float("inf")), "scheduler.iters inf is not a step count"),
        (lambda c: c.update(step=-3), "step -3 is not a step count"),
        (lambda c: c.update(step="2"), "step '2' is not a step count"),
        (lambda c: c.update(scheduler=[]), "scheduler [] is not a mapping"),
        (lambda c: c.update(config=None), "config None is not a mapping"),
        # a tensor's repr is several lines: the one line kept one
        (lambda c: c.update(config=torch.zeros(3, 3)), "config tensor([[0., 0., 0.], [0., 0., 0.], [0., 0., is not a mapping"),
        (lambda c: c["optimizer"].update(param_groups=7), "optimizer.param_groups 7 is not a list of mappings"),
        (lambda c: c["optimizer"].update(param_groups=[]), "optimizer cannot be restored (ValueError("),
        (lambda c: c["rng"].pop("numpy"), "rng cannot be restored (KeyError("),
        # restored last, after config.yaml and resumes.jsonl were written: now checked first
        (lambda c: c.update(rng_ranks=[None]), "rng cannot be restored (TypeError("),
        (lambda c: c.update(rng_ranks=7), "rng_ranks 7 is not a list"),
    ],
)  # fmt: skip
def test_a_damaged_training_state_is_one_line_naming_last_pt(tmp_path, damage, said):
    """Each damage is one line of one form, ``FILE: damaged training state: ENTRY WHAT IS
    WRONG; WHAT TO DO``: before the forty-eighth round the optimizer's, the RNG's and
    rng_ranks' lines said no remedy and worded the entry each its own way (``optimizer:
    param_groups ...``, ``rng: KeyError(...)``)."""
    root = write_dataset(tmp_path / "data")
    train(_cfg(root, tmp_path / "a", iters=4, max_steps_this_run=2), model=_stub(7))
    last = tmp_path / "a" / "last.pt"
    ckpt = load_checkpoint(last)
    damage(ckpt)
    torch.save(ckpt, last)
    with pytest.raises(ValueError) as e:
        train(_cfg(root, tmp_path / "a", iters=4, resume=True), model=_stub(7))
    line = str(e.value)
    assert line.startswith(f"{last}: damaged training state: {said}"), line
    fix = "; copy a good checkpoint over it (a step_NNNNNNN.pt of this run, or a backup) and resume again"
    assert line.endswith(fix) and line.count(";") == 1 and "\n" not in line, line
    assert not (tmp_path / "a" / "resumes.jsonl").exists()


def test_a_resume_takes_a_whole_float_step_count_and_lets_device_errors_through(
    tmp_path, monkeypatch
):
    """Not damage: a schedule of 4.0 steps (``TrainConfig(iters=4.0)`` from Python, which
    trains and records it so) resumes; the GPU out of memory while the optimizer's state is
    moved onto it is the device's error, not "damaged training state" (a good last.pt the
    line would have had a user delete)."""
    root = write_dataset(tmp_path / "data")
    train(_cfg(root, tmp_path / "a", iters=4, max_steps_this_run=2), model=_stub(7))
    last = tmp_path / "a" / "last.pt"
    ckpt = load_checkpoint(last)
    ckpt["scheduler"]["iters"] = 4.0
    torch.save(ckpt, last)

    def full(*_: object, **__: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as m:
        m.setattr(torch.optim.AdamW, "load_state_dict", full)
        with pytest.raises(torch.OutOfMemoryError):
            train(_cfg(root, tmp_path / "a", iters=4, resume=True), model=_stub(7))
    train(_cfg(root, tmp_path / "a", iters=4, resume=True), model=_stub(7))
    assert load_checkpoint(last)["step"] == 4


def test_frozen_batchnorm_statistics_survive_train_mode_and_training(tmp_path):
    """freeze_bn_stats: every BatchNorm normalises with its running statistics, which training
    never changes (validation's eval/train switches included), while its affine weights learn."""
    from trainer.models import create_model
    from trainer.train import freeze_batchnorm_statistics

    torch.manual_seed(0)
    model = create_model("tiny", 7)
    norms = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    head = [n for n in norms if not n.startswith("backbone.")]
    assert head  # the pixel decoder's, which train by default
    for m in norms.values():  # statistics of a trained model, not the fresh 0 / 1
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
    stats = {n: (m.running_mean.clone(), m.running_var.clone()) for n, m in norms.items()}
    weights = {n: norms[n].weight.detach().clone() for n in head}
    assert freeze_batchnorm_statistics(model) == len(norms)
    root = write_dataset(tmp_path / "data", sources=True, splits=("train", "val"))
    kw = dict(iters=3, val_split="val", val_every=1, val_size=[64, 48],
              augment={"crop": 64, "short_side_range": [64, 96]}, loss={"num_points": 256})  # fmt: skip
    train(_cfg(root, tmp_path / "run", **kw), model=model)
    model.train()  # validation's switch back, or a user's: the next forward undoes it
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64))
    assert not any(m.training for m in norms.values())
    for n, m in norms.items():
        assert torch.equal(m.running_mean, stats[n][0]), n
        assert torch.equal(m.running_var, stats[n][1]), n
    assert any(not torch.equal(norms[n].weight, weights[n]) for n in head)  # affine weights learn
    # and through the config: the run records it, the statistics stay put
    torch.manual_seed(0)
    fresh = create_model("tiny", 7)
    train(_cfg(root, tmp_path / "cfg", freeze_bn_stats=True, **kw), model=fresh)
    saved = load_checkpoint(tmp_path / "cfg" / "last.pt")
    assert saved["config"]["freeze_bn_stats"] is True
    name = head[0]
    assert torch.equal(saved["model"][f"{name}.running_mean"], torch.zeros_like(stats[name][0]))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    root = write_dataset(tmp_path / "data")
    with pytest.raises(NonFiniteLossError, match=r"step 5: non-finite loss .*last.pt \(step 4\)"):
        train(_cfg(root, tmp_path / "a"), model=_stub(7, nan_after=4))
    ckpt = load_checkpoint(tmp_path / "a" / "last.pt")
    assert ckpt["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    last = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "non_finite" and last["step"] == 5


def test_checkpoint_io_errors_and_atomic_write(tmp_path):
    from tests.file_modes import file_mode
    from trainer.checkpoint import (
        FORMAT,
        REQUIRED,
        checkpoint_dict,
        rng_state,
        save_checkpoint,
        set_rng_state,
    )

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(bad)
    # a text file torch's weights-only unpickler rejects with a long message (a README, say)
    (tmp_path / "notes.pt").write_text("# notes\n")
    with pytest.raises(
        ValueError, match=r"notes.pt: not a readable checkpoint: not a PyTorch file"
    ):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt: not an engine training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    state = checkpoint_dict(3, {}, {}, {}, rng=rng_state())
    assert set(REQUIRED) <= state.keys() and state["format"] == FORMAT
    with pytest.raises(ValueError, match="step given twice"):
        checkpoint_dict(3, {}, {}, {}, step=4)
    save_checkpoint(tmp_path / "run" / "last.pt", state)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["last.pt"]  # no temp file left
    # the permissions of every other output, not mkstemp's owner-only 0600 (others could not
    # read a shared checkpoint to predict with it)
    assert (tmp_path / "run" / "last.pt").stat().st_mode & 0o777 == file_mode()
    a = torch.rand(3)
    set_rng_state(load_checkpoint(tmp_path / "run" / "last.pt")["rng"])
    assert torch.equal(torch.rand(3), a)  # the generator is back where it was saved
    # a run folder given for its checkpoint: the file meant is named
    with pytest.raises(IsADirectoryError) as e:
        load_checkpoint(tmp_path / "run")
    assert str(e.value) == (
        f"{tmp_path / 'run'}: a folder, not a checkpoint; its last checkpoint is "
        f"{tmp_path / 'run' / 'last.pt'}"
    )
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "run.json").write_text("{}")
    with pytest.raises(IsADirectoryError, match=r"labels is a label run \(engine label\), not a"):
        load_checkpoint(tmp_path / "labels")


def test_a_checkpoint_of_format_1_loads_and_another_format_is_refused(tmp_path):
    """The format number is what every checkpoint written so far carries on disk (1): a reader
    must take a file stamped 1 by hand, not only one its own writer stamped, and refuse another
    number naming the file (a FORMAT changed in one place read every existing last.pt as
    foreign, and a check dropped loaded a layout it cannot read)."""
    core = {"step": 2, "model": {"w": torch.zeros(1)}, "model_config": {}, "taxonomy": {}}
    torch.save({"format": 1, **core}, tmp_path / "one.pt")
    assert load_checkpoint(tmp_path / "one.pt")["step"] == 2
    torch.save({"format": 2, **core}, tmp_path / "two.pt")
    with pytest.raises(ValueError) as e:
        load_checkpoint(tmp_path / "two.pt")
    assert str(e.value) == f"{tmp_path / 'two.pt'}: checkpoint format 2, expected 1"


def test_a_file_of_a_training_run_given_as_its_checkpoint_names_last_pt(tmp_path):
    """``engine predict --checkpoint RUN/saved_step.json`` (the record beside last.pt, which
    tab completion offers with it) or another record of the run said "not a readable
    checkpoint: not a PyTorch file", naming not the file meant; now, as for the run's folder,
    its last.pt is named. A foreign file with no last.pt beside it says what it said."""
    from engine.runinfo import record_saved_step
    from trainer.checkpoint import checkpoint_dict, rng_state, save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run / "last.pt", checkpoint_dict(3, {}, {}, {}, rng=rng_state()))
    record_saved_step(run / "last.pt", 3)
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    for name in ("saved_step.json", "metrics.jsonl"):
        with pytest.raises(ValueError) as e:
            load_checkpoint(run / name)
        assert str(e.value) == (
            f"{run / name}: not a checkpoint, a file of the training run {run}; its last "
            f"checkpoint is {run / 'last.pt'}"
        )
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(ValueError) as e:
        load_checkpoint(tmp_path / "notes.json")
    assert str(e.value) == (
        f"{tmp_path / 'notes.json'}: not a readable checkpoint: not a PyTorch file (neither a "
        "torch zip archive nor a pickle)"
    )
    assert load_checkpoint(run / "last.pt")["step"] == 3


def test_other_files_beside_a_runs_last_pt_keep_the_checkpoint_readers_message(tmp_path):
    """Only the run's own records (TRAIN_RUN_RECORDS) name last.pt: a 0-byte step_0000002.pt
    (a copy on a full disk) beside last.pt was "a file of the training run ...; its last
    checkpoint is RUN/last.pt", as were a gzipped checkpoint and a git-LFS pointer; they are
    what the reader says of them anywhere. A folder that is no training run (no metrics.jsonl,
    no config.yaml and config.json) has no records to redirect."""
    import trainer.train
    from engine.runinfo import TRAIN_RUN_RECORDS, record_saved_step
    from trainer.checkpoint import checkpoint_dict, rng_state, save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run / "last.pt", checkpoint_dict(3, {}, {}, {}, rng=rng_state()))
    record_saved_step(run / "last.pt", 3)
    (run / "config.yaml").write_text("steps: 3\n")
    (run / "config.json").write_text('{"config": {"steps": 3}}')
    (run / "step_0000002.pt").write_bytes(b"")
    (run / "weights.pt.gz").write_bytes(b"\x1f\x8b\x08\x00")
    (run / "lfs.pt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    said = {
        "step_0000002.pt": "truncated or corrupted (its zip archive is incomplete)",
        "weights.pt.gz": "not a PyTorch file (neither a torch zip archive nor a pickle)",
        "lfs.pt": "not a PyTorch file (neither a torch zip archive nor a pickle)",
    }
    for name, why in said.items():
        with pytest.raises(ValueError) as e:
            load_checkpoint(run / name)
        assert str(e.value) == f"{run / name}: not a readable checkpoint: {why}"
    with pytest.raises(ValueError) as e:  # a run before its first logged step: config.yaml
        load_checkpoint(run / "saved_step.json")
    assert str(e.value).endswith(f"; its last checkpoint is {run / 'last.pt'}")
    (run / "config.yaml").unlink()  # no training run: saved_step.json is a file like any
    with pytest.raises(ValueError) as e:
        load_checkpoint(run / "saved_step.json")
    assert str(e.value) == f"{run / 'saved_step.json'}: not a readable checkpoint: {why}"
    listed = trainer.train.__doc__.split("::")[1]  # the run directory the docstring draws
    assert [n for n in TRAIN_RUN_RECORDS if n not in listed] == []


def test_unreadable_images_are_skipped_warned_once_and_recorded(tmp_path, caplog):
    root = write_dataset(tmp_path / "data", n=4, sources=True, splits=("train", "val"))
    bad_train = root / "images" / "train" / "im1.png"
    bad_val = root / "images" / "val" / "im2.png"
    for path in (bad_train, bad_val):
        path.write_bytes(path.read_bytes()[:60])
    out = tmp_path / "run"
    out.mkdir()
    stale = '{"step": 9, "loss": 1.0, "problem": "from a run that died in this folder"}\n'
    for name in ("skipped.jsonl", "metrics.jsonl", "resumes.jsonl"):
        (out / name).write_text(stale)
    kw = dict(
        val_split="val",
        val_size=[64, 48],
        val_every=2,
        iters=4,
        augment={"crop": 64, "short_side_range": [64, 96]},
        loss={"num_points": 256},
    )
    with caplog.at_level("WARNING", logger="trainer.train"):
        result = train(_cfg(root, out, max_steps_this_run=2, **kw), model=_tiny(7))
    assert result.step == 2
    records = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    # the stale record is gone; each file once, with where it was met
    assert [(r["during"], r["problem"].split(":")[0]) for r in records] == [
        ("training", str(bad_train)),
        ("validation", str(bad_val)),
    ]
    assert all("cannot decode image" in r["problem"] for r in records)
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 2]  # two steps and a validation, none stale
    assert not (out / "resumes.jsonl").exists()
    warned = [r.getMessage() for r in caplog.records if "skipped in" in r.getMessage()]
    assert len(warned) == 2 and str(bad_train) in warned[0] and str(bad_val) in warned[1]
    val = result.val[-1]
    assert val["images"] == 3 and val["skipped"] == [records[1]["problem"]]
    # a resumed run meets them again without warning or recording them twice
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainer.train"):
        resumed = train(_cfg(root, out, resume=True, **kw), model=_tiny(7))
    assert resumed.step == 4 and resumed.val[-1]["images"] == 3
    assert len((out / "skipped.jsonl").read_text().splitlines()) == 2
    assert not [r for r in caplog.records if "skipped in" in r.getMessage()]


def test_a_resume_to_another_length_says_the_learning_rate_jumps(tmp_path, caplog):
    """--iters may change at a resume (to extend a run), which recomputes the cosine schedule:
    the learning rate at the resume step moves, and the warning gives both rates."""
    root = write_dataset(tmp_path / "data")
    run = tmp_path / "a"
    train(_cfg(root, run, iters=4, max_steps_this_run=2), model=_stub(7))

    def warnings(**kw):
        caplog.clear()
        with caplog.at_level("WARNING", logger="trainer.train"):
            train(_cfg(root, run, resume=True, **kw), model=_stub(7))
        return [m for r in caplog.records if "iter" in (m := r.getMessage())]

    assert warnings(iters=4, max_steps_this_run=1) == []  # the plan unchanged: step 3 now
    cfg = _cfg(root, run, iters=8)
    was, now = (cfg.lr * lr_factor(3, n, cfg.warmup_iters, cfg.min_lr_ratio) for n in (4, 8))
    (message,) = warnings(iters=8, max_steps_this_run=1)
    assert message.startswith("the run was planned for 4 iterations and continues to 8")
    assert f"at step 3 is {now:.3g} (it was {was:.3g})" in message and now > was


def test_a_resume_on_reordered_or_other_classes_is_refused_naming_them(tmp_path):
    """The class head's row i trains class id i: a resume on a dataset whose classes moved
    (Sky and Water swapped) would train Sky's row as Water; only the count was checked."""
    from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy

    root = write_dataset(tmp_path / "data")
    names = {5: "Water", 6: "Sky"}
    swapped = Taxonomy(
        tuple(ClassInfo(c.id, names.get(c.id, c.name), c.color, c.parent) for c in MASS13K)
    )
    swapped.save(root / "swapped.json")
    (root / "swapped.yaml").write_text("taxonomy: swapped.json\nsplits: [train]\n")
    run = tmp_path / "a"
    train(_cfg(root, run, iters=4, max_steps_this_run=2), model=_stub(7))
    before = _files(run)
    with pytest.raises(ValueError) as e:
        train(_cfg(root / "swapped.yaml", run, iters=4, resume=True), model=_stub(7))
    assert str(e.value).startswith(
        f"{root / 'swapped.yaml'}: its classes differ from those of the run's checkpoint "
        f"{run / 'last.pt'} (id 5: Water here, Sky in the checkpoint; id 6: Sky here, Water in "
        "the checkpoint); "
    )
    assert _files(run) == before  # nothing written
    assert train(_cfg(root, run, iters=4, resume=True), model=_stub(7)).step == 4


def test_a_refused_resume_warns_of_nothing_and_writes_nothing(tmp_path, caplog):
    """Every check comes before the first warning and the first write: a resume refused for an
    annotated subset that is not there printed the learning-rate warning of its new --iters
    first, as if it were going on."""
    root = write_dataset(tmp_path / "data")
    run = tmp_path / "a"
    train(_cfg(root, run, iters=4, max_steps_this_run=2), model=_stub(7))
    before = _files(run)
    with caplog.at_level("WARNING", logger="trainer.train"), pytest.raises(FileNotFoundError):
        train(
            _cfg(root, run, iters=8, resume=True, val_subsets=[str(tmp_path / "gone")]),
            model=_stub(7),
        )
    assert [r.getMessage() for r in caplog.records] == []
    assert _files(run) == before and not (run / "resumes.jsonl").exists()


def _fake_validation(monkeypatch) -> None:
    """Validation scores without a model's inference (the stub has none): its bookkeeping alone."""
    import trainer.validate

    def evaluate(model, data, *args, **kw):  # noqa: ANN001, ARG001
        return {"mIoU": 50.0, "mBIoU": 40.0, "mBF1": 30.0, "classes": [], "images": 1}

    monkeypatch.setattr(trainer.validate, "evaluate", evaluate)


def test_a_finished_run_resumes_to_nothing_and_an_iters_below_its_step_is_refused(
    tmp_path, monkeypatch
):
    """A resume of a finished run validated again and logged a second val line on each call
    (counted as a resume); one with --iters below its step wrote that into config.yaml
    (engine info: "step 4 of 2"). Now the first changes nothing, the second is refused."""
    _fake_validation(monkeypatch)
    root = write_dataset(tmp_path / "data", splits=("train", "val"))
    run = tmp_path / "a"
    kw = dict(val_split="val", val_size=[64, 48])
    train(_cfg(root, run, iters=4, max_steps_this_run=2, **kw), model=_stub(7))
    with pytest.raises(ValueError) as e:  # stopped at 2 of 4: --iters 2 trains nothing
        train(_cfg(root, run, iters=2, resume=True, **kw), model=_stub(7))
    assert str(e.value) == (
        f"{run / 'last.pt'}: the run is at step 2 of 4; --iters 2 leaves nothing to train: "
        "give --iters 4 (its plan) or another above 2"
    )
    assert train(_cfg(root, run, iters=4, resume=True, **kw), model=_stub(7)).step == 4
    before = _files(run)
    assert [json.loads(x)["step"] for x in (run / "resumes.jsonl").read_text().splitlines()] == [2]
    again = train(_cfg(root, run, iters=4, resume=True, **kw), model=_stub(7))
    assert (again.finished, again.step, again.losses, again.val) == (True, 4, [], [])
    assert _files(run) == before  # no second val line, no resume counted, config kept
    with pytest.raises(ValueError) as e:
        train(_cfg(root, run, iters=3, resume=True, **kw), model=_stub(7))
    assert str(e.value) == (
        f"{run / 'last.pt'}: the run is at step 4 of 4; --iters 3 leaves nothing to train: "
        "it is finished; give --iters above 4 to extend it"
    )
    assert _files(run) == before
    # stopped during its last validation (no val line at step 4): the resume validates
    kept = [x for x in (run / "metrics.jsonl").read_text().splitlines() if '"val"' not in x]
    (run / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    last = train(_cfg(root, run, iters=4, resume=True, **kw), model=_stub(7))
    assert not last.finished and [v["step"] for v in last.val] == [4]


def test_a_resume_drops_the_steps_logged_after_the_checkpoint(tmp_path):
    """Ctrl-C between two checkpoints: the steps logged after the last one are trained and
    logged again by the resume; they were kept as well (steps 1, 2, 3, 2, 3, 4 ...)."""
    root = write_dataset(tmp_path / "data")
    run = tmp_path / "a"
    train(_cfg(root, run, iters=6, max_steps_this_run=2), model=_stub(7))
    metrics = run / "metrics.jsonl"
    logged = metrics.read_text()
    lost = [{"step": 3, "loss": 1.0}, {"step": 3, "val": {"mIoU": 1.0}}, {"step": 4, "loss": 1.0}]
    metrics.write_text(logged + "".join(json.dumps(r) + "\n" for r in lost) + '{"step": 4, "lo')
    train(_cfg(root, run, iters=6, resume=True), model=_stub(7))
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6] and "val" not in str(lines)
    assert metrics.read_text().startswith(logged)


def _scalars(run) -> list[tuple[str, int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    return sorted((tag, e.step) for tag in tags for e in events.Scalars(tag))


def test_a_resume_purges_the_tensorboard_steps_logged_after_the_checkpoint(tmp_path):
    """The tensorboard twin of the test above: the steps a stop between two checkpoints left
    in the event files are purged, so the resumed run's curve has each step once."""
    pytest.importorskip("tensorboard")
    root = write_dataset(tmp_path / "data")
    straight = tmp_path / "straight"
    train(_cfg(root, straight, iters=6, checkpoint_every=3), model=_stub(7))
    run = tmp_path / "a"
    train(_cfg(root, run, iters=6, checkpoint_every=3, max_steps_this_run=3), model=_stub(7))
    at_3 = (run / "last.pt").read_bytes()
    # one step past the checkpoint of step 3, then stopped before the next checkpoint
    train(
        _cfg(root, run, iters=6, checkpoint_every=3, resume=True, max_steps_this_run=1),
        model=_stub(7),
    )
    (run / "last.pt").write_bytes(at_3)
    train(_cfg(root, run, iters=6, checkpoint_every=3, resume=True), model=_stub(7))
    assert _scalars(run) == _scalars(straight)


def test_the_tensorboard_writer_purges_after_the_resumed_step(tmp_path, monkeypatch):
    """Without the tensorboard package installed: the writer is asked to purge the steps after
    the checkpoint on a resume, and nothing on a fresh run."""
    import sys
    import types

    from trainer import train as train_module

    made = []
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = lambda d, purge_step=None: made.append(purge_step)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train_module._tensorboard(tmp_path, 0)
    train_module._tensorboard(tmp_path, 3)
    assert made == [None, 4]


@pytest.fixture
def sigterm_handled():
    """SIGTERM handled as the command line does (engine.stopping.install), for this test only."""
    import signal

    from engine import stopping

    before = signal.getsignal(signal.SIGTERM)
    stopping.install()
    yield
    signal.signal(signal.SIGTERM, before)
    for key in ("received", "pending", "installed"):
        setattr(stopping._State, key, False)


def test_a_sigterm_mid_step_stops_at_its_end_checkpointed_and_resumes_exactly(
    tmp_path, sigterm_handled
):
    """A scheduler's SIGTERM during step 3 (checkpoints every 1,000 steps): the step finishes,
    its checkpoint is written and ``Terminated`` names it; the resume's losses are an unstopped
    run's. Before, the process died at once and lost every step since its last checkpoint."""
    import os
    import signal

    from engine.stopping import Terminated

    root = write_dataset(tmp_path / "data", sources=True)
    straight = train(_cfg(root, tmp_path / "a", checkpoint_every=1000), model=_stub(7))
    model, calls = _stub(7), []

    def term_in_third_step(module, args):
        calls.append(1)
        if len(calls) == 3:  # the forward of step 3: the backward and optimizer step are to come
            os.kill(os.getpid(), signal.SIGTERM)

    model.register_forward_pre_hook(term_in_third_step)
    with pytest.raises(Terminated) as stop:
        train(_cfg(root, tmp_path / "b", checkpoint_every=1000), model=model)
    last = tmp_path / "b" / "last.pt"
    assert (stop.value.step, stop.value.checkpoint) == (3, str(last))
    assert load_checkpoint(last)["step"] == 3
    second = train(_cfg(root, tmp_path / "b", resume=True), model=_stub(7))
    assert second.losses == straight.losses[3:]  # bit-identical to the unstopped run's
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]


def test_a_sigterm_during_a_validation_saves_its_step_and_resumes_exactly(
    tmp_path, sigterm_handled, monkeypatch
):
    """A scheduler's SIGTERM while step 2 is being validated (checkpoints every 1,000 steps):
    the validation stops at once and step 2, whole, is checkpointed; the resume's losses are an
    unstopped run's. Before, the run stopped with its last checkpoint, every step since lost (up
    to 1,000 by default: an hour on a GPU)."""
    import os
    import signal

    import trainer.validate
    from engine.stopping import Terminated

    root = write_dataset(tmp_path / "data", sources=True, splits=("train", "val"))
    kw = dict(val_split="val", val_size=[64, 48], val_every=2, checkpoint_every=1000,
              log_every=5, augment={"crop": 64, "short_side_range": [64, 96]},
              loss={"num_points": 256})  # fmt: skip
    straight = train(_cfg(root, tmp_path / "a", **kw), model=_tiny(7))
    evaluate = trainer.validate.evaluate

    def sigterm_then_evaluate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer.validate, "evaluate", sigterm_then_evaluate)
    last = tmp_path / "b" / "last.pt"
    with pytest.raises(Terminated) as stop:
        train(_cfg(root, tmp_path / "b", **kw), model=_tiny(7))
    assert (stop.value.step, stop.value.checkpoint) == (2, str(last))
    assert load_checkpoint(last)["step"] == 2
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    (logged,) = (x for x in lines if "loss" in x)
    assert logged["step"] == 2  # the step saved, though not a 5th
    cfg = _cfg(root, tmp_path / "b", **kw)  # its loss and lr: step 2's, not another step's
    assert logged["loss"] == straight.losses[1]
    assert logged["lr"] == cfg.lr * lr_factor(1, cfg.iters, cfg.warmup_iters, cfg.min_lr_ratio)
    monkeypatch.setattr(trainer.validate, "evaluate", evaluate)
    second = train(_cfg(root, tmp_path / "b", resume=True, **kw), model=_tiny(7))
    assert second.losses == straight.losses[2:]  # bit-identical to the unstopped run's


def test_a_checkpoint_the_disk_cannot_hold_is_a_disk_error_naming_it(tmp_path, monkeypatch):
    """``torch.save`` swallows its file's write error and raises its zip writer's "[enforce fail
    at inline_container.cc:672] . unexpected pos 6607040 vs 6606928": ``engine train`` into a
    full file system stopped with that line (exit 2), naming no file and not saying the disk was
    full. The write's own error now comes out (exit 74 and how to resume, on the command line),
    and the checkpoint saved before stays whole."""
    import contextlib
    import errno

    import trainer.checkpoint
    from annotations.fileio import first_line
    from trainer.checkpoint import checkpoint_dict, save_checkpoint

    last = tmp_path / "run" / "last.pt"
    save_checkpoint(last, checkpoint_dict(3, {"w": torch.zeros(4)}, {}, {}))
    atomic_file = trainer.checkpoint.atomic_file

    class Full:  # a disk with room for 1 KB more
        def __init__(self, f):
            self.f, self.room = f, 1024

        def write(self, data):
            if len(data) > self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(data)
            return self.f.write(data)

        def flush(self):
            self.f.flush()

    @contextlib.contextmanager
    def full_disk(path):
        with atomic_file(path) as f:
            yield Full(f)

    monkeypatch.setattr(trainer.checkpoint, "atomic_file", full_disk)
    with pytest.raises(OSError) as e:
        save_checkpoint(last, checkpoint_dict(6, {"w": torch.ones(100_000)}, {}, {}))
    assert e.value.errno == errno.ENOSPC
    assert first_line(e.value) == f"{last}: No space left on device"
    assert [p.name for p in last.parent.iterdir()] == ["last.pt"]
    assert load_checkpoint(last)["step"] == 3


def test_a_checkpoint_torch_cannot_serialise_is_its_error_and_keeps_the_one_before(
    tmp_path, monkeypatch
):
    """``torch.save``'s own RuntimeError (no write failed: the disk said nothing) is raised as
    it is, and the checkpoint saved before stays whole: a save that swallowed it would put the
    half-written file in place of last.pt (nothing tested that path before the fifty-seventh
    round's mutation pass)."""
    import trainer.checkpoint
    from trainer.checkpoint import checkpoint_dict, save_checkpoint

    last = tmp_path / "run" / "last.pt"
    save_checkpoint(last, checkpoint_dict(3, {"w": torch.zeros(4)}, {}, {}))

    def half_save(obj, f):
        f.write(b"PK\x03\x04 half a zip archive")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed")

    monkeypatch.setattr(trainer.checkpoint.torch, "save", half_save)
    with pytest.raises(RuntimeError, match="PytorchStreamWriter failed"):
        save_checkpoint(last, checkpoint_dict(6, {"w": torch.ones(4)}, {}, {}))
    monkeypatch.undo()
    assert [p.name for p in last.parent.iterdir()] == ["last.pt"]
    assert load_checkpoint(last)["step"] == 3


def test_a_kept_checkpoint_is_last_pt_s_bytes_serialised_once(tmp_path, monkeypatch):
    """A kept step serialised its state twice, ``torch.save`` for last.pt and again for
    step_NNNNNNN.pt (each save of the demo's tiny model 0.22 s, docs/trainer.md, "What a save
    costs"): the kept file is now a copy of last.pt's bytes, byte for byte what ``torch.save``
    writes of that state, and loads."""
    import io

    import trainer.train.loop as train_module

    save, save_checkpoint = torch.save, train_module.save_checkpoint
    serialised, wrote = [], {}

    def counting(obj, f, *args, **kw):
        serialised.append(obj["step"])
        return save(obj, f, *args, **kw)

    def spy(path, state):  # torch.save's bytes of the state as it is at its save
        buf = io.BytesIO()
        save(state, buf)
        wrote[state["step"]] = buf.getvalue()
        return save_checkpoint(path, state)

    monkeypatch.setattr(torch, "save", counting)
    monkeypatch.setattr(train_module, "save_checkpoint", spy)
    root = write_dataset(tmp_path / "data", sources=True)
    run = tmp_path / "run"
    train(_cfg(root, run, iters=4, keep_every=2, checkpoint_every=4), model=_stub(7))
    assert serialised == [2, 4]  # before: [2, 2, 4, 4]
    assert (run / "step_0000002.pt").read_bytes() == wrote[2]
    assert (run / "step_0000004.pt").read_bytes() == (run / "last.pt").read_bytes() == wrote[4]
    assert [load_checkpoint(run / f"step_000000{n}.pt")["step"] for n in (2, 4)] == [2, 4]


def test_a_kept_checkpoint_the_disk_cannot_hold_leaves_the_files_before_it_whole(
    tmp_path, monkeypatch
):
    """The disk full part way through the copy of step 4's last.pt to step_0000004.pt: the
    error names that file, and last.pt (step 4, recorded in saved_step.json), the kept
    step_0000002.pt and every other file are whole; no temporary file is left."""
    import errno
    import os

    from annotations.fileio import first_line
    from engine.runinfo import saved_step

    root = write_dataset(tmp_path / "data", sources=True)
    run = tmp_path / "run"
    sendfile = os.sendfile

    def full(out_fd, in_fd, offset, count):
        if not (run / "step_0000002.pt").exists():
            return sendfile(out_fd, in_fd, offset, count)
        if offset == 0:  # the next copy: its first KB fits
            return sendfile(out_fd, in_fd, offset, min(count, 1024))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", full)
    with pytest.raises(OSError) as e:
        train(_cfg(root, run, keep_every=2), model=_stub(7))
    assert first_line(e.value) == f"{run / 'step_0000004.pt'}: No space left on device"
    assert load_checkpoint(run / "last.pt")["step"] == saved_step(run) == 4
    assert load_checkpoint(run / "step_0000002.pt")["step"] == 2
    assert not (run / "step_0000004.pt").exists()
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_engine_info_shows_what_a_run_warned_about_skipped_and_why_it_failed(tmp_path):
    """A run started under nohup or a scheduler, its console gone: its folder alone says what it
    warned about (metrics.jsonl's warning events), the images it skipped (skipped.jsonl) and a
    non-finite loss that stopped it. Before, engine info showed a clean finished run: the
    warning was printed and lost, skipped.jsonl unread, a blown-up run "stopped" as if killed."""
    from typer.testing import CliRunner

    from annotations.labelmap import read_label, write_label
    from cli import app

    root = write_dataset(tmp_path / "data", n=4)
    for label in (root / "annotations/train").glob("*.png"):
        write_label(label, read_label(label) * 0 + 255)
    bad = root / "images" / "train" / "im1.png"
    bad.write_bytes(bad.read_bytes()[:60])
    out = tmp_path / "run"
    train(_cfg(root, out, iters=3), model=_stub(7))
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    (kept,) = [e for e in events if e.get("event") == "warning"]
    assert "no labelled pixel" in kept["message"] and kept["step"] == 3
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert f"skipped │ step 2, training: {bad}: cannot decode image" in text
    assert f"warning │ step 3: {root / 'annotations' / 'train'}: the first 3 training" in text

    blown = tmp_path / "blown"
    with pytest.raises(NonFiniteLossError):
        train(_cfg(write_dataset(tmp_path / "d2"), blown), model=_stub(7, nan_after=4))
    res = CliRunner().invoke(app, ["info", str(blown)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "step │ 4 of 6 (failed: non-finite loss at step 5 (loss_ce=nan" in text
    assert f"lower the learning rate or check the data, then engine train --out {blown}" in text


def test_a_dev_shm_too_small_for_the_loader_workers_is_warned_and_kept(tmp_path, monkeypatch):
    """In a Docker container (64 MB of /dev/shm) training with loader workers failed only at its
    first batch, out of shared memory: the workers' batches are estimated before the first step
    and a shortfall is one warning naming /dev/shm and the fixes, kept in metrics.jsonl."""
    import collections

    import trainer.data.loader

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(trainer.data.loader.shutil, "disk_usage", lambda p: usage(64e6, 0, 1000))
    root = write_dataset(tmp_path / "data", n=3)
    out = tmp_path / "run"
    train(_cfg(root, out, iters=1, num_workers=1), model=_stub(7))
    warnings = [
        r["message"]
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if r.get("event") == "warning"
    ]
    (warning,) = [w for w in warnings if "/dev/shm" in w]
    assert warning.startswith("/dev/shm: 0 MB free, but 1 loader worker may keep about ")
    assert "docker run --shm-size" in warning and "--workers 0" in warning
    # no workers: nothing in /dev/shm, nothing said
    train(_cfg(root, tmp_path / "zero", iters=1), model=_stub(7))
    assert "/dev/shm" not in (tmp_path / "zero" / "metrics.jsonl").read_text()


def test_the_dev_shm_estimate_counts_workers_prefetch_ranks_and_5_bytes_a_pixel(monkeypatch):
    import collections

    from trainer.data import PREFETCH_FACTOR, shm_shortfall

    usage = collections.namedtuple("usage", "total used free")
    need = 2 * 4 * PREFETCH_FACTOR * 8 * 1024 * 1024 * 5  # 2 ranks, 4 workers, batch 8, 1024 px
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(0, 0, need))
    assert shm_shortfall(8, 1024, 4, processes=2) is None
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(0, 0, need - 1))
    text = shm_shortfall(8, 1024, 4, processes=2)
    assert text.startswith("/dev/shm: 671 MB free, but 4 loader workers x 2 processes may keep")
    assert "about 671 MB" in text
    assert text.endswith(  # the advice the CLI gives when it ran out (engine.runinfo.SHM_ADVICE)
        "(exit code 71); give it more (docker run --shm-size 8g; Kubernetes: an emptyDir of "
        "medium Memory), or pass --workers 0 to load in the training process"
    )
    assert shm_shortfall(8, 1024, 0) is None  # no workers

    def absent(p):
        raise FileNotFoundError(p)

    monkeypatch.setattr("shutil.disk_usage", absent)
    assert shm_shortfall(8, 1024, 4) is None  # no /dev/shm (macOS, Windows)


def test_a_warning_naming_a_folder_whose_name_is_not_utf8_is_kept(tmp_path):
    """A dataset copied from a latin-1 system (``data\\xe9``): a warning naming its folder was
    kept in metrics.jsonl as JSON of ``ensure_ascii=False``, whose surrogate has no UTF-8, and
    the run stopped there ("'utf-8' codec can't encode character '\\udce9'", exit code 2: a
    resume on labels changed since, every label 255, ...). Kept escaped, ``\\udce9``."""
    import os

    from annotations.labelmap import read_label, write_label

    root = write_dataset(tmp_path / os.fsdecode(b"data\xe9"), n=3)
    for label in (root / "annotations/train").glob("*.png"):
        write_label(label, read_label(label) * 0 + 255)
    train(_cfg(root, tmp_path / "a", iters=3), model=_stub(7))
    line = (tmp_path / "a" / "metrics.jsonl").read_bytes().decode("utf-8").splitlines()
    (warning,) = [json.loads(x) for x in line if '"warning"' in x]
    assert warning["message"].startswith(f"{root / 'annotations' / 'train'}: the first 3")


def test_the_learning_rate_of_each_step_follows_the_warmup_and_the_cosine(tmp_path):
    """lr 1e-2, 2 warmup steps of 4: steps 1..4 train at factors 1/2, 1, 1 (the cosine's start)
    and 1/2 (its middle); each group's lr is its base (backbone: x backbone_lr_mult) times that,
    and the checkpoint of step 4 records the groups as they were for step 4 (the stub's backbone
    is one convolution: its weight and bias both decay)."""
    root = write_dataset(tmp_path / "data", sources=True)
    cfg = _cfg(root, tmp_path / "run", iters=4, warmup_iters=2, backbone_lr_mult=0.5)
    train(cfg, model=_stub(7))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["lr"]) for x in lines] == [(1, 5e-3), (2, 1e-2), (3, 1e-2), (4, 5e-3)]
    groups = load_checkpoint(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"]
    assert {g["name"]: (g["lr"], g["base_lr"], g["weight_decay"]) for g in groups} == {
        "backbone_decay": (2.5e-3, 5e-3, 0.05),
        "head_decay": (5e-3, 1e-2, 0.05),
        "head_no_decay": (5e-3, 1e-2, 0.0),
    }


@pytest.mark.parametrize(("clip", "low", "high"), [(0.0, 0.999e-2, 1.0001e-2), (1e-12, 1e-8, 1e-6)])
def test_grad_clip_0_does_not_clip_and_a_tiny_one_shrinks_the_first_step(tmp_path, clip, low, high):
    """AdamW's first step moves each parameter by lr * g / (|g| + 1e-8): by lr (1e-2) where the
    gradient is far above 1e-8, unclipped (grad_clip 0 is off, not a clip at norm 0, which
    would leave every parameter where it was); clipped to a total norm of 1e-12, by at most
    lr * 1e-12 / 1e-8 = 1e-6 (and by something: the step was taken). Bounds allow float32's
    rounding of the parameters."""
    root = write_dataset(tmp_path / "data", sources=True)
    model = _stub(7)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(_cfg(root, tmp_path / "run", iters=1, grad_clip=clip, weight_decay=0.0), model=model)
    after = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    moved = max(float((after[n] - before[n]).abs().max()) for n in before)
    assert low < moved <= high


@pytest.mark.parametrize(
    ("step", "planned", "iters", "said"),
    [
        (3, 4, 4, None),  # the plan goes on
        (3, 4, 5, None),  # extended
        (4, 4, 4, None),  # finished as planned: _finished's case
        (4, 4, 5, None),  # a finished run extended
        (
            3,
            4,
            3,
            "at step 3 of 4; --iters 3 leaves nothing to train: give --iters 4 (its plan) "
            "or another above 3",
        ),
        (
            4,
            4,
            3,
            "at step 4 of 4; --iters 3 leaves nothing to train: it is finished; give "
            "--iters above 4 to extend it",
        ),
        (
            4,
            5,
            4,
            "at step 4 of 5; --iters 4 leaves nothing to train: give --iters 5 (its plan) "
            "or another above 4",
        ),
        (
            40000,
            80000,
            30000,
            "at step 40,000 of 80,000; --iters 30000 leaves nothing to "
            "train: give --iters 80000 (its plan) or another above 40000",
        ),
    ],
)
def test_a_resumes_iters_is_checked_against_the_step_and_the_plan(
    tmp_path, step, planned, iters, said
):
    from trainer.train import _check_resume_iters

    ckpt, last = {"step": step, "scheduler": {"iters": planned}}, tmp_path / "last.pt"
    if said is None:
        _check_resume_iters(ckpt, TrainConfig(iters=iters), last)
        return
    with pytest.raises(ValueError) as err:
        _check_resume_iters(ckpt, TrainConfig(iters=iters), last)
    assert str(err.value) == f"{last}: the run is {said}"


def test_a_checkpoint_without_a_schedule_is_planned_for_the_iters_given(tmp_path):
    from trainer.train import _check_resume_iters, _finished

    _check_resume_iters({"step": 4}, TrainConfig(iters=4), tmp_path)  # 4 of 4: finished
    assert _finished({"step": 4}, TrainConfig(iters=4, val_split=""), tmp_path)
    with pytest.raises(ValueError, match="at step 4 of 3; --iters 3 .* it is finished"):
        _check_resume_iters({"step": 4}, TrainConfig(iters=3), tmp_path)


@pytest.mark.parametrize(
    ("step", "planned", "iters", "lines", "finished"),
    [
        (4, 4, 4, None, True),  # no validation: at its planned end
        (3, 4, 4, None, False),
        (4, 4, 5, None, False),  # extended
        (4, 5, 4, None, False),  # cut short: not the plan
        (4, 4, 4, [{"step": 4, "val": {}}], True),
        (4, 4, 4, [{"step": 4, "loss": 1.0}, {"step": 3, "val": {}}], False),  # stopped in it
        (4, 4, 4, [], False),  # no log
        (4, 4, 4, ["[damaged", {"step": 4, "val": {}}], False),  # validated again
    ],
)
def test_a_run_is_finished_at_its_plans_end_with_its_last_validation_logged(
    tmp_path, step, planned, iters, lines, finished
):
    from trainer.train import _finished

    validates = lines is not None
    if lines:
        text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
        (tmp_path / "metrics.jsonl").write_text(text)
    cfg = TrainConfig(iters=iters, val_split="val" if validates else "")
    assert _finished({"step": step, "scheduler": {"iters": planned}}, cfg, tmp_path) is finished


def test_a_changed_schedule_gives_both_learning_rates_by_hand():
    """lr 1e-2, step 3. Planned 4, continued to 8: 0.5 (1 + cos(3 pi / 4)) = 0.1464 was,
    0.5 (1 + cos(3 pi / 8)) = 0.6913 now. Planned 8 to 4 with warmup 2 and floor 0.5: was
    0.5 + 0.25 (1 + cos(pi / 6)) = 0.9665, now 0.5 + 0.25 (1 + cos(pi / 2)) = 0.75."""
    from trainer.train import _changed_schedule

    assert _changed_schedule({"step": 3, "scheduler": {"iters": 4}}, TrainConfig(iters=4)) is None
    said = _changed_schedule({"step": 3, "scheduler": {"iters": 4}}, TrainConfig(lr=1e-2, iters=8))
    assert said == (
        "the run was planned for 4 iterations and continues to 8: the cosine schedule is "
        "recomputed over 8, so the learning rate at step 3 is 0.00691 (it was 0.00146); the "
        "losses and scores are no longer those of a run planned for 8 from the start"
    )
    cfg = TrainConfig(lr=1e-2, iters=4, warmup_iters=2, min_lr_ratio=0.5)
    said = _changed_schedule({"step": 3, "scheduler": {"iters": 8000}}, cfg)
    assert said.startswith("the run was planned for 8,000 iterations and continues to 4: ")
    said = _changed_schedule({"step": 3, "scheduler": {"iters": 8}}, cfg)
    assert "at step 3 is 0.0075 (it was 0.00967)" in said


@pytest.mark.parametrize(
    ("resume", "named", "recorded", "want"),
    [
        (True, False, {"config": {"iters": 150}}, 150),  # the run's own plan
        (True, True, {"config": {"iters": 150}}, 7),  # --iters or the config file: as given
        (False, False, {"config": {"iters": 150}}, 7),  # not a resume
        (True, False, None, 7),  # no config.json
        (True, False, {"config": {"iters": 0}}, 7),
        (True, False, {"config": {"iters": 1}}, 1),
        (True, False, {"config": {"iters": "150"}}, 7),
        (True, False, {"config": {}}, 7),
    ],
)
def test_a_resume_continues_to_the_iters_its_run_recorded(tmp_path, resume, named, recorded, want):
    from trainer.config import resumed_iters

    if recorded is not None:
        (tmp_path / "config.json").write_text(json.dumps(recorded))
    assert resumed_iters(TrainConfig(out=str(tmp_path), iters=7, resume=resume), named) == want


def test_checkpoints_validations_and_log_lines_fall_on_their_steps(tmp_path, monkeypatch):
    """Each ``*_every`` by hand, none a multiple of another. 6 steps, val_every 3, checkpoint
    and log every 4, keep every 2: validated at 3 and 6 (the end once), last.pt at 4 and 6 (the
    end) and at each kept step, kept at 2, 4 and 6, logged at 4 and 6. 7 steps stopped after 5
    (val_every 0, checkpoint every 2, keep every 3, log every 5): last.pt at 2, 3 (kept), 4 and
    5 (the stop), logged at 5, no validation; resumed with val_every 1 and keep_every 0: last.pt
    at 6 and 7, none kept, logged at 7, validated at 6 and 7 (the end once). Before, a step was kept only where last.pt was refreshed anyway:
    keep_every 2 under checkpoint_every 4 kept 4 and 6, keep_every 3 under 2 kept 6 alone."""
    import trainer.train.loop as train_module

    _fake_validation(monkeypatch)
    saved = []
    save = train_module.save_checkpoint

    copy = train_module.atomic_copy

    def spy(path, state):
        saved.append((path.name, state["step"]))
        return save(path, state)

    def copy_spy(src, dst):  # a kept step: last.pt's bytes, copied
        saved.append((dst.name, load_checkpoint(src)["step"]))
        return copy(src, dst)

    monkeypatch.setattr(train_module, "save_checkpoint", spy)
    monkeypatch.setattr(train_module, "atomic_copy", copy_spy)
    root = write_dataset(tmp_path / "data", splits=("train", "val"))

    def steps(run, **kw):
        saved.clear()
        kw = dict(val_split="val", val_size=[64, 48], **kw)
        train(_cfg(root, run, **kw), model=_stub(7))
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return (
            [x["step"] for x in lines if "val" in x],
            list(saved),
            [x["step"] for x in lines if "loss" in x],
        )

    every = dict(iters=6, val_every=3, checkpoint_every=4, keep_every=2, log_every=4)
    assert steps(tmp_path / "a", **every) == (
        [3, 6],
        [
            ("last.pt", 2),
            ("step_0000002.pt", 2),
            ("last.pt", 4),
            ("step_0000004.pt", 4),
            ("last.pt", 6),
            ("step_0000006.pt", 6),
        ],
        [4, 6],
    )
    every = dict(iters=7, val_every=0, checkpoint_every=2, keep_every=3, log_every=5)
    run = tmp_path / "b"
    assert steps(run, max_steps_this_run=5, **every) == (
        [],
        [("last.pt", 2), ("last.pt", 3), ("step_0000003.pt", 3), ("last.pt", 4), ("last.pt", 5)],
        [5],
    )
    assert steps(run, resume=True, **{**every, "val_every": 1, "keep_every": 0}) == (
        [6, 7],
        [("last.pt", 6), ("last.pt", 7)],
        [5, 7],
    )


def test_a_sigterm_between_log_lines_logs_the_step_it_saved(tmp_path, sigterm_handled):
    """A SIGTERM at step 3 of a run logging every 5 steps: the step saved is logged too, so
    ``engine info`` says step 3 of 6, as the stop's line does. Before, no line was written:
    info said "step 0 of 6 (started, no step logged)" beside a checkpoint of step 3."""
    import os
    import signal

    from engine.info import train_run_stats
    from engine.stopping import Terminated

    root = write_dataset(tmp_path / "data", sources=True)
    kw = dict(checkpoint_every=1000, log_every=5)
    straight = train(_cfg(root, tmp_path / "a", **kw), model=_stub(7))
    model, calls = _stub(7), []

    def term_in_third_step(module, args):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    model.register_forward_pre_hook(term_in_third_step)
    with pytest.raises(Terminated):
        train(_cfg(root, tmp_path / "b", **kw), model=model)
    stats = train_run_stats(tmp_path / "b")
    assert (stats.step, stats.last.get("step")) == (3, 3)
    cfg = _cfg(root, tmp_path / "b", **kw)  # its loss and lr: step 3's, not another step's
    assert stats.last["loss"] == straight.losses[2]
    assert stats.last["lr"] == cfg.lr * lr_factor(2, cfg.iters, cfg.warmup_iters, cfg.min_lr_ratio)
    train(_cfg(root, tmp_path / "b", resume=True, **kw), model=_stub(7))
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [3, 5, 6]


def test_a_slice_ending_between_log_lines_logs_the_step_it_saved(tmp_path):
    """A ``max_steps_this_run`` of 3 in a run of 6 logging every 5 steps: the slice's last step
    (its last.pt) is logged with that step's loss and lr, so ``engine info`` says step 3 of 6 as
    the call does ("stopped at step 3"). Before, no line was written: info said "step 0 of 6
    (started, no step logged)" beside a checkpoint of step 3, as a SIGTERM's stop did."""
    from engine.info import train_run_stats

    root = write_dataset(tmp_path / "data", sources=True)
    kw = dict(checkpoint_every=1000, log_every=5)
    straight = train(_cfg(root, tmp_path / "a", **kw), model=_stub(7))
    first = train(_cfg(root, tmp_path / "b", max_steps_this_run=3, **kw), model=_stub(7))
    assert first.step == 3 and load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3
    stats = train_run_stats(tmp_path / "b")
    assert (stats.step, stats.last.get("step")) == (3, 3)
    cfg = _cfg(root, tmp_path / "b", **kw)
    assert stats.last["loss"] == straight.losses[2]
    assert stats.last["lr"] == cfg.lr * lr_factor(2, cfg.iters, cfg.warmup_iters, cfg.min_lr_ratio)
    second = train(_cfg(root, tmp_path / "b", resume=True, **kw), model=_stub(7))
    assert first.losses + second.losses == straight.losses
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [3, 5, 6]
    # an unsliced run (the demo's) logs what it logged: every 5th step and the last
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [5, 6]
