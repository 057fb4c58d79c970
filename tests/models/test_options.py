"""The one override rule of the registry: options replace fields of a variant's config, checked against
the field types; unknown options and wrong types are one-line errors naming the model and the option."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vidgrid.errors import ModelError
from vidgrid.models import create_model, list_models, model_config, register_family
from vidgrid.models.mvit import VARIANTS
from vidgrid.models.resnet3d import RESNET3D_CONFIGS, SLOWFAST_CONFIGS
from vidgrid.models.x3d import X3D, X3D_CONFIGS

TABLES = {**X3D_CONFIGS, **RESNET3D_CONFIGS, **SLOWFAST_CONFIGS, **VARIANTS}


def test_every_table_entry_is_a_registered_model() -> None:
    assert sorted(TABLES) == list_models()
    for name, config in TABLES.items():
        assert model_config(name) == config


@pytest.mark.parametrize("name", list_models())
def test_unknown_option_lists_the_fields_sorted(name: str) -> None:
    fields = sorted(f.name for f in dataclasses.fields(TABLES[name]))
    with pytest.raises(ModelError) as e:
        create_model(name, no_such_option=1)
    assert str(e.value) == f"{name}: unknown option 'no_such_option' (valid: {', '.join(fields)})"
    assert e.value.option == "no_such_option"


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("x3d_xs", {"width_factor": "abc"}, "x3d_xs cannot be built with width_factor 'abc': expected a number"),
        ("x3d_xs", {"frames": 4.5}, "x3d_xs cannot be built with frames 4.5: expected an integer"),
        ("x3d_xs", {"frames": True}, "x3d_xs cannot be built with frames True: expected an integer"),
        ("slow_r50_8x8", {"stage_depths": [1, 1]}, "stage_depths [1, 1]: expected a list of 4, each an integer, or"),
        ("slow_r50_8x8", {"temporal_pool": "yes"}, "temporal_pool 'yes': expected true or false"),
        ("i3d_nl_r50_8x8", {"nonlocal_form": "gaussian"}, "nonlocal_form 'gaussian': expected one of 'dot_product', 'softmax'"),
        ("mvitv2_s_16x4", {"norm": "middle"}, "norm 'middle': expected one of 'pre', 'post', 'sandwich'"),
        ("mvitv2_s_16x4", {"depths": []}, "mvitv2_s_16x4 cannot be built with depths (): expected one or more"),
        ("mvitv2_s_16x4", {"embed_dim": 10, "num_heads": 4}, "embed_dim 10: not divisible by num_heads 4"),
        ("c2d_r50_8x8", {"width": 0}, "c2d_r50_8x8 cannot be built with width 0: expected a value > 0"),
        ("slow_r50_8x8", {"stage_depths": (1, 0, 1, 1)}, "stage_depths (1, 0, 1, 1): expected values > 0"),
        ("slowfast_r50_8x8", {"width": 4}, "width 4: expected >= beta_inv 8"),
        ("x3d_xs", {"depth_factor": -1}, "x3d_xs cannot be built with depth_factor -1.0: expected a value > 0"),
        ("x3d_xs", {"dropout": 1.0}, "x3d_xs cannot be built with dropout 1.0: expected a rate in [0, 1)"),
        ("mvitv2_s_16x4", {"drop_path": -0.1}, "drop_path -0.1: expected a rate in [0, 1)"),
    ],
)
def test_option_of_the_wrong_type_or_value(name: str, options: dict, message: str) -> None:
    with pytest.raises(ModelError) as e:
        model_config(name, **options)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert e.value.option in options


def test_options_replace_config_fields_with_coerced_values() -> None:
    cfg = model_config("slowfast_r50_8x8", width=16, stage_depths=[1, 2, 1, 1], dropout=0, alpha=2)
    assert cfg == dataclasses.replace(
        SLOWFAST_CONFIGS["slowfast_r50_8x8"], width=16, stage_depths=(1, 2, 1, 1), dropout=0.0, alpha=2
    )
    assert isinstance(cfg.dropout, float)
    assert model_config("c2d_r50_8x8", kernels=[1, [[1], [1], [3], [3]]]).kernels == (1, ((1,), (1,), (3,), (3,)))
    assert model_config("mvitv2_s_16x4", depths=[1, 1]).depths == (1, 1)


def test_dropout_and_drop_path_default_to_the_variant_and_replace_its_fields() -> None:
    with torch.device("meta"):
        x3d = create_model("x3d_xs")
        mvit = create_model("mvitv2_b_32x3", dropout=None, drop_path=None)
        resnet = create_model("i3d_r50_8x8", num_classes=7, dropout=0.1, drop_path=0.2)
    assert x3d.head.dropout.p == 0.5 and mvit.head.dropout.p == 0.5 and mvit.cfg.drop_path == 0.3
    assert resnet.head.dropout.p == 0.1 and resnet.head.fc.out_features == 7
    rates = [m.p for m in resnet.modules() if type(m).__name__ == "DropPath"]
    assert max(rates) == pytest.approx(0.2)


def test_builder_only_knobs_are_config_fields_with_the_old_defaults() -> None:
    for cfg in (*RESNET3D_CONFIGS.values(), *SLOWFAST_CONFIGS.values()):
        assert cfg.width == 64 and cfg.stage_depths is None
    with torch.device("meta"):
        r101 = create_model("slowfast_r101_8x8")
        tiny = create_model("slowfast_r101_8x8", width=16, stage_depths=(1, 1, 1, 1))
    assert len(r101.slow["res4"].blocks) == 23 and len(tiny.slow["res4"].blocks) == 1
    assert r101.feature_channels == (2048, 256) and tiny.feature_channels == (512, 64)


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'x3d_xs' is already registered"):
        register_family({"x3d_xs": X3D_CONFIGS["x3d_xs"]}, X3D)
