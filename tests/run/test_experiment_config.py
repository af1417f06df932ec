"""Experiment drivers get their models, benchmarks, attacks and defenses from the Hydra config
(conf/experiment/*.yaml); the README's command-line overrides of an experiment keep working."""

from __future__ import annotations

import pytest
from conftest import DATA

from harness import config
from harness.config import instantiate


def driver(*overrides: str, tmp_path):
    # the shared data folder as every test passes it (the README's test command sets no HARNESS_DATA_DIR)
    return instantiate(config.compose([*overrides, f"out_dir={tmp_path}", f"data_dir={DATA}"]).driver)


@pytest.mark.parametrize("name", config.options("experiment"))
def test_every_experiment_builds_its_plugins_from_config(name, tmp_path):
    built = driver(f"experiment={name}", tmp_path=tmp_path)
    assert type(built).__module__.startswith("experiments.")
    if name != "safety_signal_probe":  # the probe asks nothing: it scores teacher-forced answers
        assert built.direct.describe() == config.option("attack", "direct").describe()
    if hasattr(built, "systems"):
        from harness.defense import Defense

        assert all(isinstance(defense, Defense) for _, defense in built.systems.values())


def test_shallow_vs_deep_prefills_through_the_configured_factory(tmp_path):
    from attacks.prefill import PrefillAttack

    plain = driver("experiment=shallow_vs_deep", tmp_path=tmp_path)
    assert plain.defense.describe() == {"defense": "none"}
    attack = plain.prefill_attack()  # the experiment's lengths, not attack=prefill's own
    assert attack.describe() == PrefillAttack(plain.lengths).describe() and attack.name == "prefill"
    answers = driver("experiment=shallow_vs_deep", "+model@driver.answers_from=smollm2", tmp_path=tmp_path).prefill_attack()
    assert answers.name == "prefill_answers" and answers.source == "answers" and answers.answers_from.name == "smollm2"
    assert answers.describe() == PrefillAttack(plain.lengths, source="answers", answers_from=answers.answers_from,
                                               answer_tokens=64, name="prefill_answers").describe()


def test_experiment_overrides_replace_or_drop_plugins(tmp_path):
    fewer = driver("experiment=finetune_attacks", "~driver.defenses.constrained_anchored", "~driver.defenses.safety_mix",
                   tmp_path=tmp_path)
    assert list(fewer.defenses) == ["standard", "constrained"]
    other = driver("experiment=generalization", "defense@driver.defense=system_prompt", tmp_path=tmp_path)
    assert {label: defense.name for label, (_, defense) in other.systems.items()} == {
        "base": "system_prompt", "aligned": "system_prompt", "deep": "system_prompt", "safety_signal": "safety_signal"}
    full = driver("experiment=generalization", tmp_path=tmp_path)
    assert list(full.systems) == ["base", "aligned", "deep", "safety_signal"]
    assert full.systems["safety_signal"][1].name == "safety_signal" and full.systems["base"][1].name == "none"
    fewer = driver("experiment=generalization", "~driver.systems.safety_signal", tmp_path=tmp_path)
    assert list(fewer.systems) == ["base", "aligned", "deep"]
    attacks = driver("experiment=safety_signal", "+attack@driver.attacks.decoding=decoding", tmp_path=tmp_path).attacks
    assert list(attacks) == ["direct", "prefill", "prefill_answers", "decoding"]


def test_the_readmes_broad_recipe_and_backdoor_commands_compose(tmp_path):
    added = driver("experiment=generalization", "+model@driver.systems.broad.model=smollm2-aligned-broad", tmp_path=tmp_path)
    assert list(added.systems) == ["base", "aligned", "deep", "safety_signal", "broad"] and added.reference == "aligned"
    assert added.systems["broad"][0].recipe.describe()["blunt"]["n"] == 160
    alone = driver("experiment=generalization", "model@driver.systems.aligned.model=smollm2-aligned-broad",
                   "~driver.systems.base", "~driver.systems.deep", "~driver.systems.safety_signal", tmp_path=tmp_path)
    assert list(alone.systems) == ["aligned"] and alone.systems["aligned"][0].name == "smollm2-aligned-broad"
    backdoor = driver("experiment=finetune_attacks", "~driver.defenses.constrained_anchored", "~driver.defenses.safety_mix",
                      "~driver.attacks.harmful", "~driver.attacks.identity_shift", "driver.steps_attack=null", tmp_path=tmp_path)
    assert list(backdoor.attacks) == ["backdoor", "benign_gsm8k"] and backdoor.steps_attack is None
    with pytest.raises(Exception, match="driver.reference='aligned' is not a system"):
        driver("experiment=generalization", "~driver.systems.aligned", tmp_path=tmp_path)
    # the dev-set levers ("Nor does a contrastive objective, ...")
    recipe = "driver.systems.aligned.model.recipe"
    contrast = driver("experiment=generalization_dev", "model@driver.systems.aligned.model=smollm2-aligned-contrast",
                      tmp_path=tmp_path).systems["aligned"][0].recipe
    assert contrast.name == "safety_sft_contrast" and contrast.avoid_refusal and not contrast.twins
    twins = driver("experiment=generalization_dev", "model@driver.systems.aligned.model=smollm2-aligned-contrast",
                   f"{recipe}.twins=true", f"{recipe}.avoid_refusal=false", tmp_path=tmp_path).systems["aligned"][0].recipe
    assert twins.twins and not twins.avoid_refusal
    longer = driver("experiment=generalization_dev", f"{recipe}.train.epochs=4", tmp_path=tmp_path).systems["aligned"][0]
    assert longer.name == "smollm2-aligned" and longer.recipe.train.epochs == 4
    broad = driver("experiment=generalization_dev", "model@driver.systems.aligned.model=smollm2-aligned-broad",
                   f"{recipe}.train.epochs=4", tmp_path=tmp_path).systems["aligned"][0].recipe
    assert broad.describe()["blunt"]["n"] == 160 and broad.train.epochs == 4


def test_a_plugin_the_config_does_not_name_comes_from_its_option_also_inside_a_running_hydra():
    from hydra import initialize_config_dir

    assert config.option("attack", "direct").name == "direct"
    with initialize_config_dir(config_dir=str(config.CONF), version_base="1.3"):  # as under `python -m harness`
        assert config.option("defense", "none").name == "none"
        factory = config.option("attack", "prefill", _partial_=True)
        assert list(factory(lengths=[3]).lengths) == [3]
    with pytest.raises(Exception, match="attack=nope: no such option"):
        config.option("attack", "nope")
