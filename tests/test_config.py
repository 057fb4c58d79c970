"""Config loading: defaults, recipes, dotted overrides and one-line errors naming the key."""

import math
import re

import pytest
import yaml

from vidgrid.cli import main, parse_args
from vidgrid.config import Config, config_to_dict, list_recipes, load_config, save_config, split_overrides
from vidgrid.errors import ConfigError


def test_defaults_and_overrides():
    cfg = load_config(None, ["optim.lr=2", "data.flip=false", "multigrid.enabled=true", "model.options={width: 2}"])
    assert cfg.optim.lr == 2.0 and type(cfg.optim.lr) is float  # YAML reads "2" as an int: the float field converts it
    assert cfg.data.flip is False
    assert cfg.multigrid.enabled is True
    assert cfg.model.options == {"width": 2}
    assert cfg.multigrid.long_cycle_factors[0] == pytest.approx((0.25, 1 / math.sqrt(2)))


def test_recipe_only_overrides_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 7\nschedule:\n  policy: step\n  steps: [0, 4]\n  lrs: [1.0, 0.1]\n")
    cfg = load_config(recipe, ["train.batch_size=16"])
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.schedule.steps) == (7, 16, [0, 4])
    assert cfg.optim == Config().optim


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("optimizer.lr=1", "unknown config key 'optimizer'"),
        ("optim.lr=abc", "'optim.lr' = 'abc': expected a number"),
        ("train.epochs=1.5", "'train.epochs' = 1.5: expected an integer"),
        ("optim.lr=-1", "'optim.lr' = -1.0: expected a positive number"),
        ("data.cache_gb=-2", "'data.cache_gb' = -2.0: expected a number of GB >= 0 (0 = no cache)"),
        ("optim.name=lamb", "expected one of 'sgd', 'adamw'"),
        ("data.mean=[0.5, 0.5]", "'data.mean'"),
        ("optim.lr", "expected KEY=VALUE"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config(None, [override])


def test_unknown_key_in_recipe_names_the_file(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("data:\n  trian_list: a.csv\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown config key 'data\.trian_list'"):
        load_config(recipe)


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(None, ["train.epochs=3", "data.crop=112", "multigrid.enabled=true"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config_to_dict(cfg)


def test_every_packaged_recipe_loads():
    recipes = list_recipes()
    assert {"demo", "x3d_s_kinetics", "mvitv2_b_kinetics", "ssv2_slowfast_r50", "charades_x3d_s", "i3d_r50_1gpu",
            "i3d_nl_r50_kinetics", "slowfast_r50_multigrid"} <= set(recipes)  # the loop below is not over nothing
    for name in recipes:
        load_config(name)


def test_cli_config_error_is_one_line_exit_2(capsys):
    assert main(["schedule", "nonexistent-recipe.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nonexistent-recipe.yaml: config file not found") and err.count("\n") == 1


def test_overrides_may_follow_an_option_that_takes_a_list():
    args = parse_args(["eval", "demo", "--views", "1", "3", "data.frames=16", "--checkpoint", "c.pt", "optim.lr=0.2"])
    assert args.views == [1, 3] and args.checkpoint == "c.pt"
    assert args.overrides == ["data.frames=16", "optim.lr=0.2"]  # in their order
    assert parse_args(["train", "demo", "datasets=[]"]).overrides == ["datasets=[]"]  # a key without a dot


def test_a_word_is_an_override_only_when_its_key_starts_at_a_config_field(capsys):
    assert split_overrides(["a=1.mp4", "clips/x=2.mp4", "model.name=x3d_s", "data.frames=8"]) == (
        ["a=1.mp4", "clips/x=2.mp4"], ["model.name=x3d_s", "data.frames=8"]
    )
    assert parse_args(["predict", "a=1.mp4", "--checkpoint", "c.pt"]).videos == ["a=1.mp4"]
    with pytest.raises(SystemExit):  # predict takes no overrides
        parse_args(["predict", "v.mp4", "--checkpoint", "c.pt", "data.frames=8"])
    assert "unrecognized arguments: data.frames=8" in capsys.readouterr().err


def test_a_recipe_builds_on_its_base_and_lists_only_what_differs(tmp_path):
    (tmp_path / "parent.yaml").write_text("base: demo\noptim: {lr: 0.3}\nschedule: {steps: [0, 10, 20], lrs: [1, 0.1, 0.01]}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\noptim: {weight_decay: 0.001}\nschedule: {steps: [0, 5], lrs: [1, 0.5]}\n")
    demo, child = load_config("demo"), load_config(tmp_path / "child.yaml")
    assert (child.optim.lr, child.optim.weight_decay) == (0.3, 0.001)  # a section merges key by key
    assert (child.schedule.steps, child.schedule.lrs) == ([0, 5], [1, 0.5])  # a list is replaced
    assert (child.model, child.multigrid, child.data) == (demo.model, demo.multigrid, demo.data)
    assert "base" not in config_to_dict(child)


@pytest.mark.parametrize("text, message", [
    ("base: me.yaml\n", "me.yaml: 'base' = 'me.yaml' leads back to me.yaml"),
    ("base: loop.yaml\n", "loop.yaml: 'base' = 'me.yaml' leads back to me.yaml"),
    ("base: [demo]\n", "me.yaml: 'base' = ['demo']: expected the path or name"),
    ("base: nowhere\n", "me.yaml: 'base' = 'nowhere': expected a recipe file beside it ("),
    ("base: bad.yaml\n", "bad.yaml: unknown config key 'optim.learning_rate'"),
])
def test_a_bad_base_is_a_config_error_naming_the_file(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text("optim: {learning_rate: 0.1}\n")
    (tmp_path / "loop.yaml").write_text("base: me.yaml\n")
    (tmp_path / "me.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tmp_path / "me.yaml")
