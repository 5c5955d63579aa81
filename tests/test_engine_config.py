"""Config files: numbers as users write them, shipped recipes that load."""

from __future__ import annotations

import pytest

from multidomain.engine.config import load_config
from multidomain.engine.recipes import list_recipes, resolve_config_path


def test_scientific_notation_in_a_yaml_file_is_a_number(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {domains: [digits]}\noptim: {lr: 1e-3, weight_decay: 5e-4}\n")
    config = load_config(path, ["optim.momentum=9e-1"])
    assert (config.optim.lr, config.optim.weight_decay, config.optim.momentum) == (
        0.001,
        0.0005,
        0.9,
    )


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_shipped_recipe_loads(recipe):
    config = load_config(resolve_config_path(recipe), ["model.init=runs/pretrain"])
    assert config.data.domains
    assert config.optim.epochs >= 1


def test_shipped_recipes_include_the_demo_and_the_decathlon():
    assert {"mini/pretrain", "mini/adapt", "mini/finetune", "decathlon/adapt"} <= set(
        list_recipes()
    )


def test_a_bad_cache_images_value_names_the_choices():
    with pytest.raises(ValueError, match="data.cache_images must be true, false or auto"):
        load_config(None, ["data.domains=[animals]", "data.cache_images=sometimes"])
