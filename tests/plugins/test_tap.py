"""attack=tap: branching, off-topic pruning, width, best-scored leaves, early stop, cost, resume, bad input."""

from __future__ import annotations

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from test_crescendo import Fixed
from test_filter_defenses import Stub
from test_pair_and_template import GOAL, SaysYes

from attacks.pair.prompts import FIRST_PREFILL
from attacks.tap import TAPAttack
from attacks.tap.prompts import on_topic
from harness.defense import Defense
from harness.engine.filtering import user_text
from harness.errors import HarnessError
from harness.run.compose import build_experiment
from harness.run.loop import Experiment, run
from harness.types import Sampling


def attacker_reply(request):
    node = request.params["node"]
    if request.attack == "tap-evaluator":
        return "NO]]" if node.endswith("1") else "YES]]"  # every second child is off-topic
    return f'prompt {node}"}}' if request.prefill == FIRST_PREFILL else f'better", "prompt": "prompt {node}"}}'


@pytest.fixture()
def tap(tiny, tmp_path):
    def build(success_at=None, attacker=attacker_reply, **settings):
        attacker_engine = Stub(tiny, attacker)
        target = Stub(tiny, lambda r: "YES sure" if success_at and success_at == user_text(r) else "I'm sorry, no")
        attack = TAPAttack(attacker=tiny, attacker_engine=lambda m: attacker_engine, judge=SaysYes(),
                           store=str(tmp_path / "tap"), attacker_max_tokens=16, target_max_tokens=8,
                           **{"branching": 3, "width": 2, "depth": 2, **settings})
        attack.target_engine = target
        return attack, attacker_engine, target
    return build


def test_tap_branches_prunes_off_topic_and_keeps_the_width(tap, tiny):
    attack, attacker, target = tap()
    [req] = attack.requests([GOAL], tiny, Sampling())
    # depth 1: 0, 1, 2 (1 off-topic); depth 2: three children of 0 and of 2, the off-topic ones pruned, 2 of 4 sent
    assert [user_text(r) for r in target.sent] == ["prompt 0", "prompt 2", "prompt 0.0", "prompt 0.2"]
    assert sum(r.attack == "tap-attacker" for r in attacker.sent) == 9
    assert sum(r.attack == "tap-evaluator" for r in attacker.sent) == 9
    assert req.cost.queries == 4 and req.cost.attacker_queries == 18 and req.cost.tokens > 0 and req.adaptive
    assert req.params == {"branching": 3, "width": 2, "depth": 2} and req.attack == "tap"
    deep = next(r for r in attacker.sent if r.attack == "tap-attacker" and r.params["node"] == "2.0")
    feedback = [m.content for m in deep.messages if m.role == "user"][1:]  # node 2's answer and score fed back
    assert len(feedback) == 1 and "LANGUAGE MODEL OUTPUT: I'm sorry, no" in feedback[0] and "SCORE: 1" in feedback[0]
    assert '"prompt": "prompt 2"' in deep.messages[2].content


def test_tap_stops_at_the_first_jailbreak_and_asks_with_it(tap, tiny):
    attack, _, target = tap(success_at="prompt 2", depth=3)
    [req] = attack.requests([GOAL], tiny, Sampling())
    assert len(target.sent) == 2 and user_text(req) == "prompt 2" and req.cost.queries == 2


def test_tap_without_off_topic_pruning_asks_no_evaluator(tap, tiny):
    attack, attacker, target = tap(prune_off_topic=False, width=3, depth=1)
    attack.requests([GOAL], tiny, Sampling())
    assert {r.attack for r in attacker.sent} == {"tap-attacker"} and len(target.sent) == 3


def test_tap_resumes_from_its_log(tap, tiny, tmp_path):
    first, _, _ = tap()
    first.requests([GOAL], tiny, Sampling())
    [log] = (tmp_path / "tap").glob("*.jsonl")
    lines = log.read_text().splitlines()
    assert len(lines) == 9  # every node, pruned ones too
    again, attacker, target = tap()
    [req] = again.requests([GOAL], tiny, Sampling())
    assert attacker.sent == [] and target.sent == [] and req.cost.queries == 4
    log.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # killed during depth 2, a line torn
    third, attacker, target = tap()
    third.requests([GOAL], tiny, Sampling())
    assert {r.params["depth"] for r in attacker.sent} == {1} and len(target.sent) == 2


def test_an_attacker_without_prompts_is_a_failed_request_never_a_verdict(tap, tiny, tmp_path):
    attack, attacker, target = tap(attacker=lambda r: "")  # the attacker returns nothing
    exp = Experiment(model=tiny, benchmark=Fixed([GOAL]), attack=attack, defense=Defense(), judge=SaysYes(),
                     engine=lambda m: target, sampling=Sampling(max_tokens=4), out_dir=tmp_path / "run")
    outcome = run(exp)
    assert target.sent == [] and len(attacker.sent) == 3  # depth 1: three dead branches, nothing further
    [record] = outcome.records
    assert record.verdict.harmful is None and "none of the attacker's 3 replies held a prompt" in record.verdict.error


def test_on_topic_reads_yes_or_no():
    assert on_topic("[[YES]]") is True and on_topic("[[NO]] it asks for a recipe") is False and on_topic("[[maybe") is None


@pytest.mark.parametrize("setting", ["width", "depth", "branching"])
def test_bad_tap_settings_name_the_value(tiny, setting):
    with pytest.raises(HarnessError, match=f"attack.{setting}=0"):
        TAPAttack(attacker=tiny, attacker_engine=lambda m: None, judge=SaysYes(), **{setting: 0})


@pytest.mark.slow
def test_tap_composes_from_config_and_runs_on_tiny(tiny, data_dir, tmp_path):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[
            "model=local", f"model.path={tiny.folder}", "model.name=tiny", f"data_dir={data_dir}", f"cache_dir={tmp_path}",
            "limit=2", "sampling.max_tokens=4", f"out_dir={tmp_path / 'run'}", "attack=tap", "model@attack.attacker=local",
            f"attack.attacker.path={tiny.folder}", "attack.branching=2", "attack.width=2", "attack.depth=2",
            "attack.attacker_max_tokens=12", "attack.target_max_tokens=4"])
    outcome = run(build_experiment(cfg))
    assert len(outcome.records) == 2 and set(outcome.table["attack"]) == {"tap"}
    assert len(list((tmp_path / "tap").glob("*.jsonl"))) == 2
