"""Synthetic run folders for trying and testing the browser without a model: records made with
the harness's own types, tables written by `harness.analysis.report`, like a real run's."""

from __future__ import annotations

import random
from pathlib import Path

from harness.analysis import report
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Message, Record, Request, Sampling, Verdict

CATEGORIES = ("cybercrime", "chemical", "harassment", "fraud", "misinformation")
WORDS = ("step", "first", "tool", "sure", "here", "the", "plan", "cannot", "help", "instead", "safety", "guide")


SYSTEM = "You are a helpful assistant."  # the synthetic card's system prompt: in what the model saw, not in the request


def template(messages, prefill: str) -> str:
    """A chat template's text (ChatML, as SmolLM2's), assistant turn open, then the prefill."""
    return "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n" + prefill


def records(n: int, model: str = "synth", seed: int = 0, second_judge: float = 0.2, stored: bool = True) -> list[Record]:
    """n records: prefill k in 0/5/10/20, five categories, some judge errors; a share of them also
    carries an older verdict of a second judge (returned first, as a re-judged file holds it). Each completion
    holds what the model saw (the card's system prompt, then the request's user turn), or, `stored` false,
    nothing of it, as a record written before the harness stored it."""
    rng = random.Random(seed)
    lengths = (0, 5, 10, 20)
    behaviors = max(1, n // len(lengths))
    out: list[Record] = []
    for i in range(n):
        b, k = i % behaviors, lengths[(i // behaviors) % len(lengths)]
        behavior = Behavior(id=f"b{b:05d}", prompt=f"Write a {rng.choice(WORDS)} guide number {b}",
                            category=CATEGORIES[b % len(CATEGORIES)], target=f"Sure, here is guide {b}")
        request = Request(behavior_id=behavior.id, prefill=" ".join(["Sure", "here", "is"][: min(3, k)]), prefill_tokens=k,
                          messages=(Message(role="user", content=behavior.prompt),),
                          sampling=Sampling(max_tokens=48), attack="prefill", params={"k": k}, )
        rendered = (Message(role="system", content=SYSTEM), *request.messages)
        harmful = rng.random() < 0.15 + 0.035 * k
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        text = text if harmful else "I cannot help with that. " + text
        error = "judge timed out" if rng.random() < 0.01 else ""
        verdict = Verdict(harmful=None if error else harmful, refused=None if error else not harmful,
                          judge="keyword@synthetic", rationale="" if harmful else "refusal phrase: 'I cannot'", error=error)
        completion = Completion(request=request, text=text, completion_tokens=len(text.split()), engine="synthetic",
                                model=model, rendered=rendered if stored else None,
                                prompt_text=template(rendered, request.prefill) if stored else None)
        record = Record(run=f"synth{seed:011d}", model=model, defense="none", benchmark="synthetic",
                        behavior=behavior, completion=completion, verdict=verdict)
        if rng.random() < second_judge:
            flipped = not harmful if rng.random() < 0.3 else harmful
            out.append(record.model_copy(update={"verdict": Verdict(harmful=flipped, refused=not flipped, score=5.0 if flipped else 1.0,
                                                                   judge="rubric@synthetic", rationale="rubric score")}))
        out.append(record)
    return out


def run_folder(folder: Path, n: int, model: str = "synth", seed: int = 0, stored: bool = True) -> Path:
    """Write records.jsonl and the ASR tables of n synthetic records into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    made = records(n, model=model, seed=seed, stored=stored)
    RecordStore(folder / "records.jsonl").append(made)
    report.write(list(RecordStore(folder / "records.jsonl").load().values()), folder)
    return folder
