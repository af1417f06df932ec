"""Which tokens a suffix may use, and the re-tokenization filter.

As in the reference implementations (llm-attacks, nanoGCG), special tokens are never
candidates, and by default neither are tokens whose text is not printable ASCII.

A candidate suffix is kept only if it re-tokenizes to itself *in its prompt*: tokenizing
`before + decode(suffix) + after` must give `before_ids + suffix + after_ids` exactly. This
is stricter than re-tokenizing the suffix alone (nanoGCG's check): a suffix whose first
token would merge with the end of the query is rejected too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from attacks.gcg.slot import SuffixSlot

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


def allowed_tokens(tokenizer: PreTrainedTokenizerBase, vocab_size: int, ascii_only: bool = True) -> torch.Tensor:
    """A boolean mask over the model's embedding rows: True where a token may appear in a suffix."""
    import torch

    n = min(len(tokenizer), vocab_size)
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[:n] = True
    special = set(tokenizer.all_special_ids) | {i for i in (tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                               tokenizer.pad_token_id, tokenizer.unk_token_id) if i is not None}
    special |= {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for i in special:
        if 0 <= i < vocab_size:
            mask[i] = False
    if ascii_only:
        texts = tokenizer.batch_decode([[i] for i in range(n)])
        for i, text in enumerate(texts):
            if not (text.isascii() and text.isprintable()):
                mask[i] = False
    return mask


def decode(tokenizer: PreTrainedTokenizerBase, suffix_ids: Sequence[int]) -> str:
    """The suffix as text: what goes into the user turn."""
    return tokenizer.decode(list(suffix_ids))


def round_trips(tokenizer: PreTrainedTokenizerBase, slots: Sequence[SuffixSlot], candidates: torch.Tensor) -> torch.Tensor:
    """Boolean mask over candidate rows: True where every slot's prompt re-tokenizes to exactly its parts."""
    import torch

    rows = candidates.tolist()
    texts = tokenizer.batch_decode(rows)
    keep = [True] * len(rows)
    for slot in slots:
        encoded = tokenizer([slot.before + t + slot.after for t in texts], add_special_tokens=False).input_ids
        before, after = list(slot.before_ids), list(slot.after_ids)
        for i, (row, ids) in enumerate(zip(rows, encoded, strict=True)):
            keep[i] = keep[i] and ids == before + row + after
    return torch.tensor(keep, dtype=torch.bool)
