from __future__ import annotations

import pytest

from harness.engine.hf import HFEngine
from harness.model.base import Model
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


# --- encode once, sample many (prefix_reuse) ------------------------------------------------------
SAMPLED = Sampling(temperature=1.0, top_p=0.9, top_k=50, max_tokens=10, n=3, seed=7)


@pytest.fixture(scope="module")
def spread(tiny, tmp_path_factory) -> Model:
    """The tiny model with wider weights: varied continuations, some ending on EOS (both finish reasons)."""
    from test_vllm_engine import spread_model

    return spread_model(tiny, tmp_path_factory.mktemp("spread") / "model")


def sweep(sampling: Sampling) -> list[Request]:
    """A decoding sweep in small: every prompt under greedy and sampled configurations, with and
    without a prefill (a prompt that is a prefix of another), some requests sharing one prompt."""
    configs = [sampling, sampling.model_copy(update={"temperature": 0.7}), sampling.model_copy(update={"top_k": 5}),
               sampling.model_copy(update={"temperature": 1.0, "top_p": 0.8, "seed": 3}),
               sampling.model_copy(update={"temperature": 1.0, "n": 2})]
    return [r.model_copy(update={"behavior_id": f"{r.behavior_id}-{prefill or 'plain'}-{i}", "sampling": s})
            for prefill in ("", "Sure, here") for i, s in enumerate(configs) for r in requests(Sampling(), prefill)[:3]]


def outcome(completions: list) -> list[tuple]:
    return [(c.request.behavior_id, c.sample, c.text, c.completion_tokens, c.prompt_tokens, c.finish_reason)
            for c in completions]


def test_prefix_reuse_gives_the_same_outputs_greedy_and_sampled(spread):
    reqs = sweep(Sampling(max_tokens=12))
    reused = HFEngine(spread, batch_size=16, progress=False).generate(reqs)
    plain = HFEngine(spread, batch_size=16, progress=False, prefix_reuse=False).generate(reqs)
    assert outcome(reused) == outcome(plain)  # greedy rows and seeded draws alike, EOS rows leaving early included
    assert len(reused) == sum(r.sampling.n for r in reqs)
    assert {c.finish_reason for c in reused} == {"stop", "length"}
    for c in reused:
        assert c.finish_reason == "stop" or c.completion_tokens == c.request.sampling.max_tokens
        assert c.completion_tokens <= c.request.sampling.max_tokens
        assert c.prompt_tokens == len(spread.prompt_ids(c.request.messages, c.request.prefill))


def test_each_shared_prompt_is_encoded_once(spread):
    fed: list[tuple[int, int]] = []
    hook = spread.hf.register_forward_pre_hook(lambda _m, _a, kw: fed.append(tuple(kw["input_ids"].shape)),
                                               with_kwargs=True)
    try:
        (request,) = requests(SAMPLED.model_copy(update={"n": 6}))[1:2]
        out = HFEngine(spread, progress=False).generate([request])
    finally:
        hook.remove()
    prompt = len(spread.prompt_ids(request.messages))
    assert len(out) == 6 and fed[0] == (1, prompt)  # six samples, one encoding of the prompt
    assert all(width == 1 for _, width in fed[1:]) and max(rows for rows, _ in fed[1:]) <= 6


def test_greedy_n_and_sampled_n(spread):
    greedy, sampled = requests(Sampling(max_tokens=8, n=3))[1], requests(SAMPLED)[1]
    out = HFEngine(spread, progress=False).generate([greedy, sampled])
    assert [(c.request.sampling.greedy, c.sample) for c in out] == [(True, 0), (True, 1), (True, 2),
                                                                    (False, 0), (False, 1), (False, 2)]
    assert len({c.text for c in out[:3]}) == 1  # greedy samples are one generation
    assert len({c.text for c in out[3:]}) > 1  # sampled ones draw from their own streams


def test_seeded_sampling_reproducible_and_independent_of_the_batch(spread):
    reqs = sweep(Sampling(max_tokens=6))
    a = HFEngine(spread, batch_size=64, progress=False).generate(reqs)
    b = HFEngine(spread, batch_size=64, progress=False).generate(reqs)
    assert outcome(a) == outcome(b)
    alone = [c for r in reqs[::8] for c in HFEngine(spread, progress=False).generate([r])]
    assert outcome(alone) == outcome([c for c in a if c.request in reqs[::8]])
    reseeded = [r.model_copy(update={"sampling": r.sampling.model_copy(update={"seed": 99})}) for r in reqs]
    other = HFEngine(spread, batch_size=64, progress=False).generate(reseeded)
    assert [c.text for c in other if not c.request.sampling.greedy] != [c.text for c in a if not c.request.sampling.greedy]
    assert [c.text for c in other if c.request.sampling.greedy] == [c.text for c in a if c.request.sampling.greedy]


def test_mixed_max_tokens_are_batched_apart(spread):
    short, long = Sampling(max_tokens=3), SAMPLED.model_copy(update={"max_tokens": 12, "n": 1})
    reqs = [r for pair in zip(requests(short), requests(long), strict=True) for r in pair]
    engine = HFEngine(spread, batch_size=8, progress=False)
    batches = list(engine.stream(reqs))
    assert [sorted({c.request.sampling.max_tokens for c in b}) for b in batches] == [[3], [12]]
    for c in engine.generate(reqs):
        limit = c.request.sampling.max_tokens
        assert (c.finish_reason == "length") == (c.completion_tokens == limit) or c.finish_reason == "stop"
        assert c.completion_tokens <= limit


def test_rows_that_draw_alike_share_one_sequence(spread):
    """Greedy and top-k 1 rows of one prompt draw the same tokens: after the prompt, every step is one row."""
    fed: list[tuple[int, int]] = []
    (greedy,) = requests(Sampling(max_tokens=8))[1:2]
    top1 = greedy.model_copy(update={"behavior_id": "top1", "sampling": SAMPLED.model_copy(update={"top_k": 1, "n": 4,
                                                                                                  "max_tokens": 8})})
    hook = spread.hf.register_forward_pre_hook(lambda _m, _a, kw: fed.append(tuple(kw["input_ids"].shape)),
                                               with_kwargs=True)
    try:
        out = HFEngine(spread, progress=False).generate([greedy, top1])
    finally:
        hook.remove()
    assert len(out) == 5 and len({c.text for c in out}) == 1
    assert fed[0][0] == 1 and all(shape == (1, 1) for shape in fed[1:])  # one prompt, then one sequence
    assert len(fed) == 1 + min(out[0].completion_tokens, 7)  # a step per token after the first (none after EOS)


def test_the_nucleus_draw_over_candidates_equals_the_draw_over_the_whole_vocabulary():
    """`nucleus` sums the kept candidates' masses in token-id order over the candidates only; the draw it made
    before, over a dense vocabulary-wide array, picks the same token for every row, parameter and uniform number."""
    import torch

    from harness.engine.hf import nucleus, pick

    def dense_reference(logits, k, want, top_p, uniform, width):
        values, ids = logits.topk(width, dim=-1, sorted=True)
        position = torch.arange(width)[None, :]
        inside = position < want[:, None]
        in_top_k = torch.where(k[:, None] > 0, position < k[:, None], torch.ones_like(inside))
        log_norm = torch.where(k > 0, values.masked_fill(~in_top_k, float("-inf")).logsumexp(-1), logits.logsumexp(-1))
        probs = (values - log_norm[:, None]).exp().double().masked_fill(~inside, 0.0)
        keep = inside & (((probs.cumsum(-1) - probs) < top_p[:, None]) | (position == 0))
        dense = torch.zeros(logits.shape, dtype=torch.float64)
        dense.scatter_(1, ids, probs.masked_fill(~keep, 0.0))
        return pick(dense.cumsum(-1), uniform)

    gen = torch.Generator().manual_seed(0)
    rows, vocab, width = 64, 3000, 256
    logits = torch.randn(rows, vocab, generator=gen) * torch.linspace(0.5, 8, rows)[:, None]  # flat to peaked
    k = torch.tensor([0, 1, 5, 50] * (rows // 4))
    want = torch.where(k > 0, k, torch.full_like(k, width))
    top_p = torch.linspace(0.05, 1.0, rows, dtype=torch.float64)
    for trial in range(5):
        uniform = torch.rand(rows, generator=gen, dtype=torch.float64)
        if trial == 0:
            uniform[:4] = torch.tensor([0.0, 1.0 - 1e-16, 0.5, 1e-12], dtype=torch.float64)  # the edges
        got, _ = nucleus(logits, k, want, top_p, uniform, width)
        assert got.tolist() == dense_reference(logits, k, want, top_p, uniform, width).tolist()
