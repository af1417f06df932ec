"""attack=refusal_ablation: hooks remove the direction, orthogonalised weights match them, the attack on tiny, bad input."""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch

from attacks.refusal_ablation import RefusalAblationAttack
from attacks.refusal_ablation import direction as rd
from benchmarks.advbench import AdvBench
from benchmarks.alpaca_eval import AlpacaEval
from harness.defense import Defense
from harness.engine.hf import HFEngine
from harness.errors import HarnessError
from harness.judge.keyword import KeywordJudge
from harness.model.ablated import AblatedModel, ablate, orthogonalize
from harness.model.base import LocalModel
from harness.run.loop import Experiment, run
from harness.training import contamination
from harness.types import Behavior, Message, Sampling


def inputs(tiny, texts=("Explain how to pick a lock", "Write a short poem about the sea")):
    batch = list(rd.batches(tiny, list(texts), 8))[0]
    return {"input_ids": batch[0], "attention_mask": batch[1]}


def unit(d: int, seed: int = 0) -> torch.Tensor:
    r = torch.randn(d, generator=torch.Generator().manual_seed(seed))
    return r / r.norm()


def fresh(tiny):
    return LocalModel(tiny.folder, name="tiny-copy", cache_dir=tiny.cache_dir).hf


def test_hooks_project_the_direction_out_of_every_layer(tiny):
    hf = fresh(tiny)
    r = unit(hf.config.hidden_size)
    with torch.no_grad():
        before = hf(**inputs(tiny), output_hidden_states=True).hidden_states
        handles = ablate(hf, r)
        after = hf(**inputs(tiny), output_hidden_states=True).hidden_states
        for h in handles:
            h.remove()
        again = hf(**inputs(tiny), output_hidden_states=True).hidden_states
    layers = hf.config.num_hidden_layers
    assert max(float((before[i] @ r).abs().max()) for i in range(layers)) > 1e-2  # there was a component
    assert max(float((after[i] @ r).abs().max()) for i in range(layers)) < 1e-5  # every layer's input: none left
    # the last layer's output (before the final norm) has none either: capture it with a hook on the norm
    seen = {}
    handle = hf.model.norm.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        handles = ablate(hf, r)
        hf(**inputs(tiny))
    for h in [handle, *handles]:
        h.remove()
    assert float((seen["x"] @ r).abs().max()) < 1e-5
    assert torch.equal(before[-1], again[-1])  # removing the handles restores the model


def test_orthogonalised_weights_give_the_hooked_outputs(tiny, tmp_path):
    r = unit(64, seed=1)
    hooked = fresh(tiny)
    ablate(hooked, r)
    folded = fresh(tiny)
    assert folded.get_output_embeddings().weight is folded.get_input_embeddings().weight  # tiny ties them
    orthogonalize(folded, r)
    folded.save_pretrained(tmp_path / "folded")
    tiny.tokenizer.save_pretrained(tmp_path / "folded")
    reloaded = LocalModel(tmp_path / "folded", name="folded", cache_dir=tmp_path).hf
    plain = fresh(tiny)
    with torch.no_grad():
        want = hooked(**inputs(tiny)).logits
        got = reloaded(**inputs(tiny)).logits
        unablated = plain(**inputs(tiny)).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(unablated, want, atol=1e-3)  # the ablation changed the outputs at all


@pytest.fixture()
def sources(data_dir):
    return {"harmful": AdvBench(data_dir=data_dir, limit=10, limit_order="first"),
            "harmless": AlpacaEval(data_dir=data_dir, limit=10, limit_order="first")}


def attack(sources, **values) -> RefusalAblationAttack:
    return RefusalAblationAttack(**{**sources, "n_train": 4, "n_val": 2, **values})


def test_attack_selects_caches_and_records_its_choice(tiny, sources, data_dir, tmp_path):
    a = attack(sources, exclude=[AdvBench(data_dir=data_dir, limit=2, limit_order="first")])
    card = a.tamper(tiny)
    assert isinstance(card, AblatedModel) and card.id != tiny.id
    selection = json.loads((card.direction_folder / "selection.json").read_text())
    assert selection["layer"] in (0, 1) and -6 <= selection["position"] <= -1 and selection["how"]
    assert len(selection["candidates"]) == 2 * 6  # both layers below 0.8 x 2, every post-instruction position
    assert selection["post_instruction_tokens"] == ["<|im_end|>", "\n", "<|im_start|>", "ass", "istant", "\n"]
    skipped = [c for c in selection["candidates"] if c.get("skipped")]
    assert skipped and all(c["layer"] == 0 and not c["kept"] for c in skipped)  # the same template token embeddings
    assert selection["layer"] == 1 or selection["position"] not in [c["position"] for c in skipped]
    assert selection["prompts"] == {"harmful_train": 4, "harmful_val": 2, "harmless_train": 4, "harmless_val": 2}
    # training-side prompts only: the excluded evaluation prompts were not used, the used ones are on record
    harmful = [b for b in sources["harmful"].load()]
    found = contamination.overlap(harmful, contamination.trained_prompts(card))
    assert set(found) == {b.id for b in harmful[2:8]} and found[harmful[2].id] == ["refusal direction harmful"]
    again = attack(sources, exclude=[AdvBench(data_dir=data_dir, limit=2, limit_order="first")]).tamper(tiny)
    assert again.direction_folder == card.direction_folder  # cached by recipe
    out = run(Experiment(model=tiny, benchmark=AdvBench(data_dir=data_dir, limit=2, limit_order="first"), attack=a,
                         defense=Defense(), judge=KeywordJudge(), engine=partial(HFEngine, progress=False),
                         sampling=Sampling(max_tokens=4), out_dir=tmp_path / "run"))
    assert len(out.records) == 2
    params = out.records[0].completion.request.params
    assert params == {"layer": selection["layer"], "position": selection["position"], "method": "hooks"}


def test_orthogonalize_writes_a_folder_any_engine_loads(tiny, sources):
    a = attack(sources, layer=1, position=-1, orthogonalize=True)
    card = a.tamper(tiny)
    assert isinstance(card, LocalModel) and (card.folder / "config.json").is_file()
    assert json.loads((card.folder / "selection.json").read_text())["how"].startswith("given")
    hooked = attack(sources, layer=1, position=-1).tamper(tiny)
    ids = tiny.prompt_ids((Message(role="user", content="Explain how to pick a lock"),))
    with torch.no_grad():
        x = torch.tensor([ids])
        assert torch.allclose(card.hf(input_ids=x).logits, hooked.hf(input_ids=x).logits, atol=1e-4, rtol=1e-4)
    assert a.selection == {"layer": 1, "position": -1, "method": "weights"}


def test_hooked_card_has_no_folder_for_other_engines(tiny, sources):
    card = attack(sources, layer=1, position=-2).tamper(tiny)
    with pytest.raises(HarnessError, match="only engine=hf can run it; for another engine set attack.orthogonalize=true"):
        _ = card.folder
    assert card.context_length == tiny.context_length and card.tokenizer is not None


@pytest.mark.parametrize("values, message", [
    ({"layer": 2, "position": -1}, "attack.layer=2: model 'tiny' has 2 decoder layers; choose 0..1"),
    ({"layers": [0, 7]}, "attack.layer=7"),
    ({"layer": 0, "position": -1}, "the difference of means is zero there"),
    ({"position": -9}, "attack.position=-9: the chat template of 'tiny' puts 6 tokens after the user's text"),
])
def test_out_of_range_layer_or_position_is_one_line(tiny, sources, values, message):
    with pytest.raises(HarnessError) as err:
        attack(sources, **values).tamper(tiny)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_no_harmless_prompts_is_one_line(tiny, sources, data_dir):
    a = attack(sources, exclude=[AlpacaEval(data_dir=data_dir, limit=10, limit_order="first")])
    with pytest.raises(HarnessError, match="no harmless prompts") as err:
        a.tamper(tiny)
    assert "\n" not in str(err.value)


def test_no_held_out_prompts_to_select_with(tiny, sources):
    with pytest.raises(HarnessError, match="no held-out harmful prompts"):
        attack(sources, n_train=10).tamper(tiny)


@pytest.mark.parametrize("values, message", [({"position": 0}, "attack.position=0"), ({"n_train": 0}, "attack.n_train=0"),
                                             ({"positions": [1]}, "positions count from the end")])
def test_bad_settings_are_one_line(sources, values, message):
    with pytest.raises(HarnessError, match=message):
        attack(sources, **values)


def test_requests_need_the_direction_first(tiny, sources):
    with pytest.raises(HarnessError, match="before tamper"):
        attack(sources).requests([Behavior(id="b", prompt="x")], tiny, Sampling())


@pytest.mark.parametrize("option", ["refusal_ablation", "best_of_n"])
@pytest.mark.parametrize("model", ["smollm2-aligned", "smollm2-deep"])
def test_composes_on_the_embedded_models(option, model):
    from harness.config import compose, instantiate

    cfg = compose([f"attack={option}", f"model={model}"])
    built = instantiate(cfg.attack)
    assert built.name == option and cfg.model.name == model
