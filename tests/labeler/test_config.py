"""Class specs, YAML class files, option parsing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from annotations.taxonomy import MASS13K
from labeler.cli_support import build_label_config, parse_band
from labeler.config import (
    ClassSpec,
    LabelConfig,
    load_class_spec,
    parse_grid,
    parse_shard,
    shard_from_env,
)

SPEC = """
Bicycle:
  prompts: [bicycle, bike]
  negatives: motorcycle
  box_threshold: 0.3
  min_area: 64
Car: {prompts: [car], parent: Others}
Empty:
"""


def test_class_spec_defaults_and_prompt_order():
    c = ClassSpec("Bicycle")
    assert c.prompts == ("bicycle",) and c.box_threshold == 0.35 and c.text_threshold == 0.25
    c = ClassSpec("Bicycle", prompts=("bicycle", " bike "), negatives=("motorcycle",))
    assert c.all_prompts == ("bicycle", "bike", "motorcycle")


def test_class_name_is_stripped_as_the_taxonomy_strips_it(tmp_path):
    """--class " Car" (a name split from a list by a script): the run's taxonomy holds "Car",
    so its run.json's config.cls.name must too. Before, the whole dataset was labelled and
    then fuse, review, report and annotate refused the run (config.cls.name ' Car' but
    class_id 7 is 'Car')."""
    from annotations.labelrun import read_run_info

    c = ClassSpec(" Traffic light ")
    assert c.name == "Traffic light" and c.prompts == ("traffic light",)
    cfg = LabelConfig(data="d", cls=c)
    assert cfg.out_dir == Path("runs/label/traffic light")
    tax = MASS13K.with_new_class(c.name)
    doc = {"config": {"cls": {"name": c.name}}, "taxonomy": tax.to_dict(), "class_id": 7}
    (tmp_path / "run.json").write_text(json.dumps(doc))
    assert read_run_info(tmp_path / "run.json").class_name == "Traffic light"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": " "}, "non-empty name"),
        ({"name": ".."}, r"--class '\.\.' is no class name"),
        ({"name": "."}, r"--class '\.' is no class name"),
        # several classes in one --class (as --split takes them) would be one class whose
        # prompt finds them all; fuse --priority could not name it
        ({"name": "Bicycle,Car"}, r"holds no ','.*--class 'Bicycle' then --class 'Car'"),
        # the label of the unannotated regions in every export: labelled, never importable
        ({"name": "Unannotated"}, r"--class 'Unannotated' is no class name: annotation files"),
        ({"name": "ignore"}, "regions left unannotated"),
        # engine compare --class 7 is the class of id 7, not the class called "7"
        ({"name": " 7"}, r"--class '7' is no class name: engine compare --class reads a number"),
        ({"name": "Car\nX"}, r"--class 'Car\\nX': a class name holds no control character"),
        ({"name": "Car\tX"}, "no control character"),
        ({"name": "B", "prompts": ("bike",), "negatives": ("Bike",)}, "both prompt and negative"),
        ({"name": "B", "prompts": ("a. b",)}, "contains '.'"),
        # '?' splits phrases too (transformers' Grounding DINO SPECIAL_TOKENS: 1012 '.', 1029 '?')
        ({"name": "B", "negatives": ("is it a bike? no",)}, r"contains '\?', which Grounding"),
        ({"name": "B", "box_threshold": 1.0}, "box_threshold"),
        ({"name": "B", "min_area": -1}, "min_area"),
    ],
)
def test_class_spec_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassSpec(**kwargs)


def test_the_default_prompt_leaves_out_grounding_dinos_separators():
    """A name with '.' or '?' (St. Bernard, .hidden) made a default prompt that the '.' check
    refused, and --backend simulated, which takes no --prompt, could not label it at all."""
    assert ClassSpec("St. Bernard").prompts == ("st bernard",)
    assert ClassSpec(".hidden").prompts == ("hidden",)
    assert ClassSpec("Traffic light").prompts == ("traffic light",)  # others as they were
    assert ClassSpec("traffic_light").prompts == ("traffic_light",)
    assert ClassSpec("می‌روم").name == "می‌روم"  # a zero-width non-joiner is a letter's
    with pytest.raises(ValueError, match="contains '.'"):  # a prompt given is the user's
        ClassSpec("St. Bernard", prompts=("st. bernard",))
    with pytest.raises(ValueError, match=r"class '\.\.\.': its name leaves no prompt"):
        ClassSpec("...")


def test_yaml_class_spec_and_overrides(tmp_path):
    f = tmp_path / "classes.yaml"
    f.write_text(SPEC)
    c = load_class_spec(f, "bicycle")
    assert (c.name, c.prompts, c.negatives, c.box_threshold, c.min_area) == (
        "Bicycle", ("bicycle", "bike"), ("motorcycle",), 0.3, 64,
    )  # fmt: skip
    c = load_class_spec(f, "Bicycle", box_threshold=0.5, prompts=(), min_area=None)
    assert c.box_threshold == 0.5 and c.prompts == ("bicycle", "bike") and c.min_area == 64
    assert load_class_spec(f, "Empty").prompts == ("empty",)
    with pytest.raises(ValueError, match="no class 'Boat'; classes in the file: Bicycle, Car"):
        load_class_spec(f, "Boat")
    f.write_text("Bicycle: {prompt: [x]}")
    with pytest.raises(ValueError, match=r"unknown keys \['prompt'\] \(did you mean 'prompts'\?\)"):
        load_class_spec(f, "Bicycle")
    with pytest.raises(FileNotFoundError):
        load_class_spec(tmp_path / "nope.yaml", "Bicycle")


def test_a_run_json_class_spec_pasted_as_it_is_is_a_spec_file(tmp_path):
    """run.json's config.cls (with its name key, lists for tuples) under its class name loads
    back to the same ClassSpec; before, the 'name' key was refused as unknown. A name that is
    not the entry's is refused."""
    import yaml

    spec = ClassSpec("Bicycle", ("bicycle", "bike"), ("motorcycle",), 0.3, 0.2, 9, 7)
    recorded = json.loads(json.dumps(dataclasses.asdict(spec)))  # as run.json holds it
    f = tmp_path / "classes.yaml"
    f.write_text(yaml.safe_dump({"Bicycle": recorded}))
    assert load_class_spec(f, "Bicycle") == spec
    f.write_text(yaml.safe_dump({"Bicycle": {**recorded, "name": "Car"}}))
    with pytest.raises(ValueError, match=r"class 'Bicycle' has name 'Car'; give the class's own"):
        load_class_spec(f, "Bicycle")


@pytest.mark.parametrize(
    "entry, message",
    [
        ('box_threshold: "0.3"', "class 'Bicycle': box_threshold must be a number, got '0.3'"),
        ("min_area: 6.5", "class 'Bicycle': min_area must be a whole number, got 6.5"),
        ("max_instances: true", "class 'Bicycle': max_instances must be a whole number, got True"),
        ("parent: [Others]", "class 'Bicycle': parent must be a class name, got ['Others']"),
        ("prompts: {a: b}", "class 'Bicycle': prompts must be a prompt or a list of prompts"),
    ],
)
def test_spec_values_of_the_wrong_type_name_the_file_and_key(tmp_path, entry, message):
    """A quoted number was "'<=' not supported between instances of 'int' and 'str'"."""
    f = tmp_path / "classes.yaml"
    f.write_text(f"Bicycle:\n  {entry}\n")
    with pytest.raises(ValueError) as err:
        load_class_spec(f, "Bicycle")
    assert str(err.value).startswith(f"{f}: {message}")


def test_a_spec_parent_not_in_the_dataset_names_the_spec_file(tmp_path):
    """It was "unknown class 'Vehicles'", naming neither the file nor the dataset."""
    from tests.loop_helpers import make_dataset

    make_dataset(tmp_path / "data", n=1)
    f = tmp_path / "classes.yaml"
    f.write_text("Bicycle: {parent: Vehicles}\n")
    with pytest.raises(ValueError) as err:
        build_label_config(class_name="Bicycle", data=str(tmp_path / "data"), spec=str(f))
    assert str(err.value).startswith(
        f"{f}: class 'Bicycle': parent 'Vehicles' is not a class of dataset {tmp_path / 'data'} "
        "(Others, Human,"
    )
    f.write_text("Bicycle: {parent: Ground}\n")
    assert build_label_config(class_name="Bicycle", data=str(tmp_path / "data"), spec=str(f))
    f.write_text("Bicycle: {parent: background}\n")  # the release's name of Others: said so
    with pytest.raises(ValueError) as err:
        build_label_config(class_name="Bicycle", data=str(tmp_path / "data"), spec=str(f))
    assert str(err.value).endswith("Water); the MaSS13K release's 'background' is Others here")


def test_parsers():
    assert (
        parse_grid("2x3") == (2, 3)
        and parse_shard("1/4") == (1, 4)
        and parse_band("0.1,0.2") == (0.1, 0.2)
    )
    for bad in ("2", "0x2", "axb", "65x1", "1x65"):
        with pytest.raises(ValueError, match="--tiles"):
            parse_grid(bad)
    assert parse_grid("64x64") == (64, 64)  # the bound itself is in
    for bad in ("4/4", "1", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    assert parse_band("0.2,0.2") == (0.2, 0.2)  # no band: allowed
    assert parse_band("0,0") == (0.0, 0.0) and parse_band("1,1") == (1.0, 1.0)  # ends: in
    for bad in ("0.1,-0.5", "1.5,0.5"):  # out of range, not "lo <= hi"
        with pytest.raises(ValueError, match=r"in 0\.\.1"):
            parse_band(bad)
    for bad in ("0.3,0.2", "0.1", "0.1,1.5"):
        with pytest.raises(ValueError, match="--uncertain"):
            parse_band(bad)
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None and shard_from_env({}) is None
    # set by hand, not by torchrun: one line naming the variable, not int()'s, nor --shard's
    for env, message in (
        ({"RANK": "", "WORLD_SIZE": "4"}, "environment variable RANK='': not a whole number"),
        ({"RANK": "1", "WORLD_SIZE": "four"}, "environment variable WORLD_SIZE='four': not a"),
        ({"RANK": "-1", "WORLD_SIZE": "4"}, "environment variable RANK='-1': must be >= 0"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "environment variable WORLD_SIZE='0': must be >= 1"),
        ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK=4 and WORLD_SIZE=4: the rank must be below"),
    ):
        with pytest.raises(ValueError) as e:
            shard_from_env(env)
        assert str(e.value).startswith(f"environment variable{'s' * (env['RANK'] == '4')}")
        assert message in str(e.value), str(e.value)


def test_backend_options():
    from labeler.cli_support import parse_backend_options

    assert parse_backend_options(["noise=0.1", "seed=3", "mode=erode", "flag=true"]) == {
        "noise": 0.1, "seed": 3, "mode": "erode", "flag": True,
    }  # fmt: skip
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_backend_options(["novalue"])
    cfg = build_label_config(
        class_name="Car", data="d", backend="simulated", backend_option=["noise=0.2"]
    )
    assert cfg.extra == {"noise": 0.2} and cfg.result_fields()["extra"] == {"noise": 0.2}


def test_backend_option_values_read_as_written_and_mistyped_ones_named():
    """``miss_max=1e-1`` was the string '1e-1' (YAML 1.1 floats need a dot) and the run a
    ``TypeError: '<=' not supported`` traceback; ``fill_holes=maybe`` a true value unsaid."""
    from labeler.cli_support import parse_backend_options
    from labeler.simulated import SimulationConfig

    extra = parse_backend_options(["miss_max=1e-1", "seed=010", "fill_holes=no", "min_area=on"])
    assert extra == {"miss_max": 0.1, "seed": 10, "fill_holes": False, "min_area": True}
    sim = SimulationConfig.from_dict({"miss_max": 0.1, "seed": 10, "fill_holes": False})
    assert (sim.miss_max, sim.seed, sim.fill_holes) == (0.1, 10, False)
    for option, message in (
        ("miss_max=abc", "miss_max must be a number, got 'abc'"),
        ("fill_holes=maybe", "fill_holes must be true or false, got 'maybe'"),
        ("min_area=on", "min_area must be a whole number, got True"),
        ("seed=1.5", "seed must be a whole number, got 1.5"),
    ):
        with pytest.raises(ValueError) as e:
            SimulationConfig.from_dict(parse_backend_options([option]))
        assert str(e.value) == f"simulated backend options: {message}"


@pytest.mark.parametrize(
    "given, named",
    [
        ({"prompt": ["bike"]}, "--prompt"),
        ({"negative": ["motorcycle"]}, "--negative"),
        ({"tiles": "2x2"}, "--tiles"),
        ({"overlap": 0.3}, "--overlap"),
        ({"max_boxes": 5}, "--max-boxes"),
        ({"precision": "fp16"}, "--precision"),
        ({"device": "cpu"}, "--device"),
        ({"detector": "x", "box_threshold": 0.4}, "--detector, --box-threshold"),
    ],
)
def test_simulated_backend_refuses_what_only_a_model_reads(given, named):
    """Options the simulated labeler cannot use are refused, not recorded in run.json (and its
    config hash, which would relabel for nothing) unused."""
    with pytest.raises(ValueError, match=f"^{named}: --backend simulated runs no detector"):
        build_label_config(class_name="Car", data="d", backend="simulated", **given)


def test_simulated_backend_keeps_device_and_precision_for_refine_and_its_own_options():
    cfg = build_label_config(
        class_name="Car", data="d", backend="simulated", refine="sam", device="cpu",
        precision="fp32", min_area=50, max_instances=3, backend_option=["noise=0.1"],
    )  # fmt: skip
    assert (cfg.device, cfg.precision, cfg.refine) == ("cpu", "fp32", "sam")
    assert (cfg.cls.min_area, cfg.cls.max_instances) == (50, 3)
    with pytest.raises(ValueError, match="--backend simulated takes no model"):
        build_label_config(class_name="Car", data="d", backend="simulated", model="m")


@pytest.mark.parametrize("backend", ["grounded-sam", "sam3"])
def test_model_backends_refuse_backend_options_they_never_read(backend):
    """--backend-option box_threshold=0.2 on a model backend was recorded in run.json (and the
    config hash) and read by nothing: the run went on at the default thresholds."""
    with pytest.raises(
        ValueError, match=rf"^--backend-option box_threshold=0.2: --backend {backend} takes no"
    ):
        build_label_config(
            class_name="Car", data="d", backend=backend, backend_option=["box_threshold=0.2"]
        )


@pytest.mark.parametrize(
    "backend, setting, said",
    [
        ("grounded-sam", {"extra": {"box_threshold": 0.2}}, "extra={'box_threshold': 0.2}"),
        ("grounded-sam", {"model_revision": "v1"}, "model_revision='v1'"),
        ("sam3", {"detector_revision": "v1"}, "detector_revision='v1'"),
        # a hub id of its own by default: set is "other than the default" (reviewer B)
        ("sam3", {"detector": "my/detector"}, "detector='my/detector'"),
        ("sam3", {"segmenter": "my/sam"}, "segmenter='my/sam'"),
        ("simulated", {"detector": "my/detector"}, "detector='my/detector'"),
        ("simulated", {"model": "facebook/sam3"}, "model='facebook/sam3'"),
    ],
)
def test_a_library_label_config_a_model_backend_never_reads_is_refused(
    tmp_path, backend, setting, said
):
    """The CLI refuses ``--backend-option`` and the other backend's revisions on a model
    backend, but ``run_labeling(LabelConfig(backend="grounded-sam", extra={...}))`` recorded
    them in run.json and its config hash, read by nothing (a change relabelled every image)."""
    from labeler.run import run_labeling
    from tests.loop_helpers import make_dataset

    make_dataset(tmp_path / "data", n=1)
    out = tmp_path / "run"
    cfg = LabelConfig(
        data=str(tmp_path / "data"), cls=ClassSpec("Bicycle"), out=str(out), backend=backend,
        progress=False, local_files_only=True, **setting,
    )  # fmt: skip
    with pytest.raises(ValueError) as err:
        run_labeling(cfg)  # refused before any model is looked for
    assert str(err.value).startswith(f"LabelConfig {said}: backend {backend} reads none of it")
    assert not out.exists()


def test_sam3_refuses_the_text_threshold_it_has_none_of():
    """--backend sam3 --text-threshold 0.4 was taken and read by nothing (SAM 3 thresholds its
    one score with --box-threshold), yet hashed: a changed one relabelled every image alike."""
    with pytest.raises(ValueError, match="^--text-threshold: --backend sam3 has no text thresh"):
        build_label_config(class_name="Car", data="d", backend="sam3", text_threshold=0.4)
    cfg = build_label_config(class_name="Car", data="d", backend="sam3", box_threshold=0.4)
    assert (cfg.cls.box_threshold, cfg.cls.text_threshold) == (0.4, 0.25)
    assert build_label_config(class_name="Car", data="d", text_threshold=0.4).cls.text_threshold


def test_one_model_folder_spelled_differently_hashes_alike():
    """--detector ./m/gdino/ (tab completion's trailing slash) on a run made with m/gdino
    relabelled every image as "other settings"; hub ids and the plain spelling (the hash of
    runs made before) are unchanged."""
    plain = build_label_config(class_name="Car", data="d", detector="m/gdino", segmenter="m/sam")
    other = build_label_config(
        class_name="Car", data="d", detector="./m/gdino/", segmenter="m//sam/"
    )
    assert (other.detector, other.segmenter) == ("m/gdino", "m/sam")
    assert plain.result_fields() == other.result_fields()
    refine = build_label_config(class_name="Car", data="d", refine="./m/./s/")
    assert refine.refine == "m/s"
    hub = build_label_config(class_name="Car", data="d", detector="IDEA-Research/gdino-tiny")
    assert hub.detector == "IDEA-Research/gdino-tiny"


def test_a_split_given_twice_is_labelled_once():
    cfg = build_label_config(class_name="Car", data="d", split="test,train,test")
    assert cfg.splits == ("test", "train")


def test_overlap_without_tiles_is_refused():
    with pytest.raises(ValueError, match="--overlap is the overlap between --tiles"):
        build_label_config(class_name="Car", data="d", overlap=0.3)
    cfg = build_label_config(class_name="Car", data="d", tiles="2x2", overlap=0.3)
    assert (cfg.tiles, cfg.tile_overlap) == ((2, 2), 0.3)


def test_label_command_defaults_are_the_config_s():
    """The refusals above compare with LabelConfig's defaults: the command must share them."""
    import inspect

    from labeler import cli as labeler_cli

    params = inspect.signature(labeler_cli.label_cmd).parameters
    default = LabelConfig(data="d", cls=ClassSpec("B"))
    assert parse_grid(params["tiles"].default.default) == default.tiles
    assert params["overlap"].default.default == default.tile_overlap
    for name in ("max_boxes", "precision", "device"):
        assert params[name].default.default == getattr(default, name), name
    # 0 keeps every instance, as the backends read it: the help says so (it did not)
    assert "0: all" in params["max_instances"].default.help


def test_build_config_hash_fields_and_default_out():
    cfg = build_label_config(
        class_name="Bicycle", data="d", prompt=["bike"], tiles="2x2", batch_size=8
    )
    assert cfg.out_dir.as_posix() == "runs/label/bicycle" and cfg.tiles == (2, 2)
    # a path separator in the class name is no folder of the default --out
    assert build_label_config(class_name="Bike/Rack", data="d").out_dir.as_posix() == (
        "runs/label/bike_rack"
    )
    other = build_label_config(
        class_name="Bicycle", data="d", prompt=["bike"], tiles="2x2", batch_size=1
    )
    assert cfg.result_fields() == other.result_fields()  # batch size does not re-label
    changed = build_label_config(
        class_name="Bicycle", data="d", prompt=["bike"], tiles="2x2", box_threshold=0.4
    )
    assert cfg.result_fields() != changed.result_fields()
    with pytest.raises(ValueError, match="precision"):
        LabelConfig(data="d", cls=ClassSpec("B"), precision="fp8")
    # a library caller's tiles too: 2**63 rows looped without end in tile_windows
    with pytest.raises(
        ValueError, match=r"tiles must be at most 64 a side \(--tiles\), got \(2, 65\)"
    ):
        LabelConfig(data="d", cls=ClassSpec("B"), tiles=(2, 65))


def test_the_summary_names_the_run_s_manifest_for_the_failures_it_does_not_list(tmp_path, capsys):
    """'... and 5 more failures (see manifest.jsonl)' sent the user to a file of the working
    directory; the run's own is named."""
    from labeler.cli_support import print_label_summary
    from labeler.run import LabelSummary

    failed = [("test", f"img{i:02d}", "unreadable") for i in range(25)]
    out = tmp_path / "runs" / "label" / "car"
    print_label_summary(LabelSummary(out_dir=out, config_hash="h", shard=(0, 1), failed=failed))
    err = " ".join(capsys.readouterr().err.split())
    assert f"... and 5 more failures (see {out / 'manifest.jsonl'})" in err


@pytest.mark.parametrize(
    "failed, not_retryable, cannot, expect",
    [
        (0, 0, {}, []),
        (3, 0, {}, ["3 images failed; run the same command again to retry exactly those"]),
        (2, 2, {}, ["thin 2"]),  # a manifest from before kinds were recorded: too thin
        (2, 2, {"too_thin": 2}, ["thin 2"]),
        (1, 1, {"over_pad": 1}, ["pad 1"]),
        (
            4,
            3,
            {"over_pad": 2, "too_thin": 0},
            [
                "1 image failed; run the same command again to retry exactly those",
                "thin 1",
                "pad 2",
            ],
        ),
    ],
)
def test_the_closing_lines_say_each_kind_of_image_that_fails_on_every_run(
    failed, not_retryable, cannot, expect
):
    """An image larger than the pad size of a segmenter that does not resize fails on every run
    as one too thin does: its own line, no retry offered; an older manifest's ``retry`` false
    without a kind is of an image too thin. Before, the only line said "too thin" of any."""
    from labeler.models import failure_advice

    words = {
        "thin": "(too thin to label: a model would resize {them} to 0 px across)",
        "pad": "(larger than the pad size of a segmenter whose processor does not resize: "
        "do_resize false)",
    }

    def line(short: str) -> str:
        if " " in short and not short.startswith(("thin ", "pad ")):
            return short
        kind, n = short.split()
        them = "them" if int(n) > 1 else "it"
        images = f"{n} images" if int(n) > 1 else "1 image"
        return (
            f"{images} cannot be labelled by this backend {words[kind].format(them=them)}; "
            f"running again fails {them} again"
        )

    assert failure_advice(failed, not_retryable, cannot) == [line(e) for e in expect]


def test_the_summary_offers_no_retry_for_images_too_thin_to_label(tmp_path, capsys):
    """An image too thin for a model's resize fails on every run (``not_retryable``, counted
    where it is caught): the closing lines offered "run the same command again to retry exactly
    those" for it too."""
    from labeler.cli_support import print_label_summary
    from labeler.run import LabelSummary

    thin = "a.png is 1x192 px (HxW), too thin to label: the detector's ..."
    failed = [("train", "a", thin), ("val", "c", thin), ("train", "b", "cannot decode image")]
    out = tmp_path / "run"
    summary = LabelSummary(out_dir=out, config_hash="h", shard=(0, 1), failed=failed)
    summary.not_retryable = 2
    print_label_summary(summary)
    err = " ".join(capsys.readouterr().err.split())
    assert err.endswith(
        "1 image failed; run the same command again to retry exactly those 2 images cannot be "
        "labelled by this backend (too thin to label: a model would resize them to 0 px across); "
        "running again fails them again"
    )
    summary = LabelSummary(out_dir=out, config_hash="h", shard=(0, 1), failed=failed[:1])
    summary.not_retryable = 1
    print_label_summary(summary)
    err = " ".join(capsys.readouterr().err.split())
    assert "retry" not in err and err.endswith(
        "1 image cannot be labelled by this backend (too "
        "thin to label: a model would resize it to 0 px across); running again fails it again"
    )


@pytest.mark.parametrize("shard", [(1,), (0, 2, 1), ("0", "2"), (2, 2), (-1, 2)])
def test_a_library_shard_that_is_no_i_of_n_is_named_as_given(shard):
    """``LabelConfig(shard=(1,))``: its own error message indexed ``shard[1]`` and raised
    IndexError; a shard of three or of strings likewise slipped past or raised TypeError."""
    with pytest.raises(ValueError, match=r"shard must be \(i, n\) with 0 <= i < n, got "):
        LabelConfig(data="d", cls=ClassSpec("Bicycle"), shard=shard)
    assert LabelConfig(data="d", cls=ClassSpec("Bicycle"), shard=(1, 2)).shard == (1, 2)


def test_a_negative_count_names_the_option_only_where_it_was_typed(tmp_path):
    """A --spec file's ``min_area: -5`` said ``(--min-area)``, an option never given; and a
    ``--min-area -1`` beside a --spec file was blamed on the file."""
    from tests.loop_helpers import make_dataset

    data = str(make_dataset(tmp_path / "data", n=1))
    f = tmp_path / "classes.yaml"
    f.write_text("Bicycle: {min_area: -5, parent: Ground}\n")
    with pytest.raises(ValueError) as err:
        build_label_config(class_name="Bicycle", data=data, spec=str(f))
    assert str(err.value) == f"{f}: class 'Bicycle': min_area must be >= 0, got -5"
    f.write_text("Bicycle: {max_instances: 3, parent: Ground}\n")
    for spec in (str(f), ""):
        with pytest.raises(ValueError) as err:
            build_label_config(class_name="Bicycle", data=data, spec=spec, max_instances=-2)
        assert (
            str(err.value)
            == "class 'Bicycle': max_instances must be >= 0 (--max-instances), got -2"
        )
