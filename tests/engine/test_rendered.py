"""What the model saw is stored: every record carries the messages as the engine rendered them (the card's
system prompt included) and the chat template's text, whichever engine or wrapper generated it, and none of
it changes a key or the digest a stored human label is matched by."""

from __future__ import annotations

import copy
from functools import partial

import pytest
from test_openai_engine import engine as api_engine
from test_openai_engine import server  # noqa: F401 - `server` is a fixture used here

from attacks.direct import DirectAttack
from benchmarks.advbench import AdvBench
from defenses.smoothllm import SmoothEngine, SmoothSettings
from harness.defense import Defense
from harness.engine.filtering import FilteredEngine, Screen
from harness.engine.hf import HFEngine
from harness.judge.keyword import KeywordJudge
from harness.run.loop import Experiment, run
from harness.store.records import RecordStore
from harness.types import Completion, Message, Request, Sampling, content_hash

SYSTEM = "Be safe, and say so."
SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM"  # what SmolLM2's template adds to a chat with no system turn


@pytest.fixture(scope="module")
def carded(tiny):
    """The tiny model with a card system prompt (inserted at generation time, never in the request)."""
    model = copy.copy(tiny)
    model.system_prompt = SYSTEM
    return model


def stored(model, engine, data_dir, out, limit: int = 2) -> list:
    exp = Experiment(model=model, benchmark=AdvBench(data_dir=str(data_dir), limit=limit), attack=DirectAttack(), defense=Defense(),
                     judge=KeywordJudge(), engine=engine, sampling=Sampling(max_tokens=3), out_dir=out)
    run(exp)
    return list(RecordStore(out / "records.jsonl").load().values())


def test_an_hf_record_carries_the_card_system_prompt_and_the_template_text(carded, data_dir, tmp_path):
    records = stored(carded, partial(HFEngine, progress=False), data_dir, tmp_path)
    assert len(records) == 2
    for r in records:
        c = r.completion
        assert [m.role for m in c.request.messages] == ["user"]  # the request never held it
        assert c.rendered == (Message(role="system", content=SYSTEM), *c.request.messages)
        assert c.prompt_text == carded.template_text(c.request.messages) + c.request.prefill
        assert SYSTEM in c.prompt_text and c.prompt_text.endswith("assistant\n")


def test_the_template_text_shows_a_system_turn_the_template_added(tiny, data_dir, tmp_path):
    """The tiny card has no system prompt, but SmolLM2's template inserts its own: the text shows it."""
    (r,) = stored(tiny, partial(HFEngine, progress=False), data_dir, tmp_path, limit=1)
    assert r.completion.rendered == r.completion.request.messages
    assert SMOL_DEFAULT in r.completion.prompt_text


def test_the_prefill_closes_the_stored_text(carded):
    request = Request(behavior_id="b", messages=(Message(role="user", content="Hi"),), prefill="Sure, here",
                      sampling=Sampling(max_tokens=2))
    (c,) = HFEngine(carded, progress=False).stamped(HFEngine(carded, progress=False).generate([request]))
    assert c.prompt_text.endswith("assistant\nSure, here") and c.rendered[0].content == SYSTEM


def test_openai_chat_records_the_messages_sent_and_no_template_text(carded, server, data_dir, tmp_path):  # noqa: F811
    records = stored(carded, partial(api_engine, server=server), data_dir, tmp_path)
    sent = [call["body"]["messages"] for call in server.generations()]
    assert sorted(map(str, sent)) == sorted(str([m.model_dump() for m in r.completion.rendered]) for r in records)
    assert all(r.completion.rendered[0].content == SYSTEM and r.completion.prompt_text is None for r in records)


def test_openai_completions_records_the_template_text(carded, server, data_dir, tmp_path):  # noqa: F811
    (r,) = stored(carded, partial(api_engine, server=server, api="completions"), data_dir, tmp_path, limit=1)
    assert r.completion.prompt_text == carded.template_text(r.completion.request.messages)
    assert r.completion.rendered[0] == Message(role="system", content=SYSTEM)


class Blocks(Screen):
    name = "blocks"

    def inputs(self, requests):
        return ["blocked at the input" if i == 0 else "" for i, _ in enumerate(requests)]


def test_filter_and_smoothllm_wrappers_record_what_the_model_saw(carded, data_dir, tmp_path):
    filtered = stored(carded, lambda m: FilteredEngine(HFEngine(m, progress=False), Blocks()), data_dir, tmp_path / "f")
    assert {bool(r.completion.blocked) for r in filtered} == {True, False}
    assert all(r.completion.rendered[0].content == SYSTEM and SYSTEM in r.completion.prompt_text for r in filtered)
    smooth = SmoothSettings(copies=3, rate=0.5, seed=1)
    smoothed = stored(carded, lambda m: SmoothEngine(HFEngine(m, progress=False), smooth), data_dir, tmp_path / "s")
    for r in smoothed:
        c = r.completion
        assert c.rendered[0].content == SYSTEM
        assert c.rendered[1].content != c.request.messages[0].content  # the chosen copy's perturbed user turn
        assert c.rendered[1].content in c.prompt_text


def test_the_bookkeeping_changes_no_key_and_no_label_digest():
    request = Request(behavior_id="b", messages=(Message(role="user", content="Hi"),))
    bare = Completion(request=request, text="ok")
    stamped = bare.model_copy(update={"rendered": (Message(role="system", content="S"), *request.messages),
                                      "prompt_text": "<s>S Hi"})
    before = {k: v for k, v in bare.model_dump(mode="json").items() if k not in Completion.UNKEYED}
    assert stamped.digest() == bare.digest() == content_hash(before)  # the digest a label stored before holds
    assert Completion.model_validate_json(stamped.model_dump_json()) == stamped
    assert Completion.model_validate_json(bare.model_dump_json()).rendered is None
