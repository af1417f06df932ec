"""Per-token KL between two models along harmful answers (the shallow-alignment diagnostic).

For harmful (prompt, answer) pairs, at each response position t the two models' next-token
distributions given the prompt and the first t answer tokens are compared:
KL(model || reference) averaged over pairs. Shallow alignment shows as KL concentrated in
the first few positions. Also reported: each model's probability that the next token
starts a refusal (the first tokens of the refusal texts), position by position.

    python -m harness kl --model smollm2-aligned --reference smollm2
    python -m harness kl --model llama2 --reference llama2-base    # on a GPU
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.model.base import Model
from harness.training.refusals import REFUSALS
from harness.types import Behavior, Message

log = logging.getLogger(__name__)


def refusal_start_ids(model: Model, texts: Sequence[str] = REFUSALS) -> list[int]:
    return sorted({model.tokenizer(t, add_special_tokens=False).input_ids[0] for t in texts})


def per_position(model: Model, reference: Model, pairs: Sequence[tuple[Behavior, str]], positions: int = 20) -> pd.DataFrame:
    """Mean KL(model || reference) and refusal-start probabilities at response positions 0..positions-1."""
    import torch

    if model.tokenizer.get_vocab() != reference.tokenizer.get_vocab():
        raise HarnessError(f"per-token KL needs one tokenizer: {model.name} and {reference.name} differ")
    refuse = torch.tensor(refusal_start_ids(model))
    sums = torch.zeros(3, positions)
    counts = torch.zeros(positions)
    for behavior, answer in pairs:
        messages = (Message(role="user", content=behavior.query()),)
        prompt = model.prompt_ids(messages)
        answer_ids = model.tokenizer(answer, add_special_tokens=False).input_ids[: positions - 1]
        ids = torch.tensor([prompt + answer_ids])
        n = len(answer_ids) + 1  # predictions for answer positions 0..len(answer)
        logp = []
        for m in (model, reference):
            with torch.inference_mode():
                logits = m.hf(input_ids=ids.to(m.hf.device)).logits[0, len(prompt) - 1 : len(prompt) - 1 + n].float().cpu()
            logp.append(torch.log_softmax(logits, dim=-1))
        kl = (logp[0].exp() * (logp[0] - logp[1])).sum(-1)
        sums[0, :n] += kl
        sums[1, :n] += logp[0][:, refuse].exp().sum(-1)
        sums[2, :n] += logp[1][:, refuse].exp().sum(-1)
        counts[:n] += 1
    mean = sums / counts.clamp(min=1)
    return pd.DataFrame({
        "position": range(positions),
        "pairs": counts.int().tolist(),
        "kl": mean[0].tolist(),
        f"p_refusal_start[{model.name}]": mean[1].tolist(),
        f"p_refusal_start[{reference.name}]": mean[2].tolist(),
    })


def summary(table: pd.DataFrame, first: int = 5) -> dict[str, float]:
    total = table["kl"].sum()
    return {"kl_total": float(total), f"kl_first_{first}": float(table["kl"][:first].sum()),
            f"share_first_{first}": float(table["kl"][:first].sum() / total) if total else float("nan")}


def plot(table: pd.DataFrame, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.bar(table["position"], table["kl"])
    ax1.set_xlabel("response position (tokens of the harmful answer)")
    ax1.set_ylabel("mean per-token KL")
    ax1.set_title(title)
    for column in [c for c in table.columns if c.startswith("p_refusal")]:
        ax2.plot(table["position"], table[column], marker=".", label=column.removeprefix("p_refusal_start"))
    ax2.set_xlabel("response position")
    ax2.set_ylabel("P(next token starts a refusal)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def analyse(model: Model, reference: Model, pairs: Sequence[tuple[Behavior, str]], out: Path, positions: int = 20) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    table = per_position(model, reference, pairs, positions)
    table.to_csv(out / "kl.csv", index=False)
    stats = summary(table)
    (out / "kl.md").write_text(table.to_markdown(index=False, floatfmt=".3f") + "\n\n" + json.dumps(stats, indent=1) + "\n")
    plot(table, f"KL({model.name} || {reference.name})", out / "kl.png")
    return stats
