"""Batched HF engine vs the per-prompt `generate` loop research code uses.

Same model, same prompts (AdvBench), greedy, same max tokens; both measured in one run.
Writes results/bench/generation.{json,md}: tokens/s of each and the ratio.

    python bench/generation.py                       # embedded SmolLM2, 32 prompts x 64 tokens
    python bench/generation.py --model tiny --prompts 64
"""

from __future__ import annotations

import argparse
import time

from common import DATA, write
from hydra import compose, initialize_config_dir

from benchmarks.advbench import AdvBench
from harness.cli import instantiate
from harness.engines.hf import HFEngine
from harness.types import Message, Request, Sampling


def per_prompt_loop(model, requests):
    """What most research code does: one `generate` call per prompt."""
    import torch

    tok, hf = model.tokenizer, model.hf
    texts, tokens = [], 0
    for r in requests:
        ids = torch.tensor([model.prompt_ids(r.messages, r.prefill)], device=hf.device)
        with torch.inference_mode():
            out = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=r.sampling.max_tokens,
                              do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = out[0, ids.shape[1]:].tolist()
        new = new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
        tokens += len(new)
        texts.append(tok.decode(new, skip_special_tokens=True))
    return texts, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2", help="a model card name from conf/model")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default=None, help="override the card's dtype (float32, bfloat16)")
    args = parser.parse_args()

    from common import ROOT

    overrides = [f"model={args.model}"] + ([f"model.dtype={args.dtype}"] if args.dtype else [])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    model = instantiate(cfg.model)
    behaviors = AdvBench(data_dir=str(DATA), limit=args.prompts).load()
    sampling = Sampling(max_tokens=args.max_tokens)
    requests = [Request(behavior_id=b.id, messages=(Message(role="user", content=b.query()),), sampling=sampling) for b in behaviors]
    model.hf  # load once, outside the timings
    HFEngine(model, batch_size=args.batch_size, progress=False).generate(requests[:2])  # warm-up

    t = time.perf_counter()
    batched = HFEngine(model, batch_size=args.batch_size, progress=False).generate(requests)
    batched_s = time.perf_counter() - t
    batched_tokens = sum(c.completion_tokens for c in batched)

    t = time.perf_counter()
    loop_texts, loop_tokens = per_prompt_loop(model, requests)
    loop_s = time.perf_counter() - t

    same = sum(a.text == b for a, b in zip(batched, loop_texts))
    rows = [
        {"method": "per-prompt generate loop", "seconds": loop_s, "tokens": loop_tokens, "tokens_per_s": loop_tokens / loop_s},
        {"method": f"HF engine (batch {args.batch_size}, length-sorted)", "seconds": batched_s, "tokens": batched_tokens,
         "tokens_per_s": batched_tokens / batched_s},
    ]
    summary = {"model": model.name, "dtype": model.dtype, "prompts": len(requests), "max_tokens": args.max_tokens,
               "speedup_tokens_per_s": rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"],
               "speedup_wall": loop_s / batched_s, "identical_greedy_outputs": f"{same}/{len(requests)}"}
    path = write("generation", rows, summary, notes=__doc__.split("\n\n")[0])
    print(path.read_text())


if __name__ == "__main__":
    main()
