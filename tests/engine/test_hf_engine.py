from __future__ import annotations

from harness.engine.hf import HFEngine
from harness.types import Message, Request, Sampling

PROMPTS = ["Hi", "Tell me a long story about a dragon who learns to code in Python", "What is 2+2?", "Name three colors."]


def requests(sampling: Sampling, prefill: str = "") -> list[Request]:
    return [Request(behavior_id=f"b{i}", messages=(Message(role="user", content=p),), prefill=prefill, sampling=sampling)
            for i, p in enumerate(PROMPTS)]


def test_batched_greedy_equals_one_prompt_at_a_time(tiny):
    reqs = requests(Sampling(max_tokens=12))
    batched = HFEngine(tiny, batch_size=4, progress=False).generate(reqs)
    single = HFEngine(tiny, batch_size=1, progress=False).generate(reqs)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.request.behavior_id for c in batched] == ["b0", "b1", "b2", "b3"]  # request order kept
    c = batched[1]
    assert c.completion_tokens <= 12 and c.prompt_tokens == len(tiny.prompt_ids(c.request.messages))
    assert c.finish_reason in ("stop", "length") and c.model == tiny.id and c.engine == "hf"


def test_continuation_after_prefill_excludes_prefill(tiny):
    (c,) = HFEngine(tiny, progress=False).generate(requests(Sampling(max_tokens=5), prefill="Sure, here")[:1])
    assert c.request.prefill == "Sure, here" and not c.text.startswith("Sure, here")
    assert c.prompt_tokens == len(tiny.prompt_ids(c.request.messages, "Sure, here"))


def test_sampling_n_and_seed_reproducible(tiny):
    s = Sampling(temperature=1.0, top_p=0.9, top_k=50, max_tokens=8, n=3, seed=7)
    a = HFEngine(tiny, progress=False).generate(requests(s))
    b = HFEngine(tiny, progress=False).generate(requests(s))
    assert len(a) == 12 and sorted({c.sample for c in a}) == [0, 1, 2]
    assert [c.text for c in a] == [c.text for c in b]
    other = HFEngine(tiny, progress=False).generate(requests(s.model_copy(update={"seed": 8})))
    assert [c.text for c in other] != [c.text for c in a]


def test_stream_yields_batches(tiny):
    batches = list(HFEngine(tiny, batch_size=3, progress=False).stream(requests(Sampling(max_tokens=2))))
    assert [len(b) for b in batches] == [3, 1]


def test_length_finish_reason(tiny):
    (c,) = HFEngine(tiny, progress=False).generate(requests(Sampling(max_tokens=1))[:1])
    assert c.completion_tokens <= 1
    assert (c.finish_reason == "length") == (c.completion_tokens == 1)
