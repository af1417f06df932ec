"""The harness training loop vs a plain `transformers.Trainer`, same model, data and settings.

Both run the same examples (the safety-SFT mix: HarmBench refusals + AlpacaEval answers),
batch size, learning rate and fp32, for the same number of optimizer steps, from the same
initial weights, one after the other in one process. Reported: seconds per step and
tokens/s (non-padding tokens processed). The harness loop also runs with the token-wise
constrained objective (defense=constrained_sft): its reference log-probs are computed once
before training (timed separately) and its step time is compared with plain SFT's. Those
rows use plainly shuffled batches, as the Trainer does; a last row runs the loop with
length-grouped batches (train.group_by_length, the loop's default) on the same examples.
Writes results/bench/training.{json,md}.

    python bench/training.py                  # embedded SmolLM2, 8 steps x batch 8
    python bench/training.py --model tiny --steps 20
"""

from __future__ import annotations

import argparse
import tempfile
import time

from common import safety_sft_examples, write

from defenses.constrained_sft.objective import ConstrainedObjective
from harness.training.loop import Encoder, Objective, TrainSettings, fit, load_trainable


def trainer_run(model, examples, settings: TrainSettings, steps: int) -> dict:
    """The usual research-code path: tokenized dataset with -100 labels, Trainer, full logits."""
    import torch
    from transformers import Trainer, TrainingArguments

    encode = Encoder(model, settings.max_length)
    rows = []
    for e in examples:
        ids, start = encode.ids(e)
        rows.append({"input_ids": ids, "labels": [-100] * start + ids[start:]})

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        pad = model.tokenizer.pad_token_id
        return {
            "input_ids": torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch]),
            "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch]),
            "labels": torch.tensor([r["labels"] + [-100] * (width - len(r["labels"])) for r in batch]),
        }

    hf = load_trainable(model, settings)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=settings.batch_size, max_steps=steps,
                                 learning_rate=settings.lr, warmup_steps=settings.warmup_steps, lr_scheduler_type="linear",
                                 max_grad_norm=settings.max_grad_norm, logging_steps=1, save_strategy="no", report_to=[],
                                 dataloader_num_workers=0, seed=settings.seed, bf16=bool(settings.bf16), disable_tqdm=True,
                                 remove_unused_columns=False)
        trainer = Trainer(model=hf, args=args, train_dataset=rows, data_collator=collate)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    tokens = sum(len(r["input_ids"]) for r in rows[: steps * settings.batch_size])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": seconds, "tokens": tokens, "first_loss": losses[0], "last_loss": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    model, examples = safety_sft_examples(args.model, args.steps * args.batch_size)
    # Plain shuffled batches for the loop-vs-Trainer and objective rows (Trainer shuffles plainly by default);
    # the length-grouped row shows what train.group_by_length (the loop's default) saves on the same data.
    settings = TrainSettings(lr=1e-5, epochs=1, batch_size=args.batch_size, warmup_steps=0, bf16=False, max_steps=args.steps,
                             group_by_length=False)

    import torch

    torch.manual_seed(0)
    ours = fit(load_trainable(model, settings), model, lambda epoch: examples, examples, settings, Objective())
    torch.manual_seed(0)
    plain = trainer_run(model, examples, settings, args.steps)
    constrained = ConstrainedObjective()
    start = time.perf_counter()
    constrained.prepare(model, Encoder(model, settings.max_length), examples)
    prepare_s = time.perf_counter() - start
    torch.manual_seed(0)
    ours_c = fit(load_trainable(model, settings), model, lambda epoch: examples, examples, settings, constrained)
    grouped_settings = settings.model_copy(update={"group_by_length": True})
    torch.manual_seed(0)
    ours_g = fit(load_trainable(model, grouped_settings), model, lambda epoch: examples, examples, grouped_settings, Objective())

    rows = [
        {"method": "transformers.Trainer (full logits)", "seconds": plain["seconds"], "s_per_step": plain["seconds"] / args.steps,
         "tokens_per_s": plain["tokens"] / plain["seconds"], "first_loss": plain["first_loss"], "last_loss": plain["last_loss"]},
        {"method": "harness loop (response-position logits)", "seconds": ours["seconds"], "s_per_step": ours["seconds"] / args.steps,
         "tokens_per_s": ours["tokens"] / ours["seconds"], "first_loss": ours["history"][0]["loss"], "last_loss": ours["history"][-1]["loss"]},
        {"method": "harness loop, constrained objective", "seconds": ours_c["seconds"], "s_per_step": ours_c["seconds"] / args.steps,
         "tokens_per_s": ours_c["tokens"] / ours_c["seconds"], "first_loss": ours_c["history"][0]["loss"],
         "last_loss": ours_c["history"][-1]["loss"]},
        {"method": "harness loop, length-grouped batches", "seconds": ours_g["seconds"], "s_per_step": ours_g["seconds"] / args.steps,
         "tokens_per_s": ours_g["tokens"] / ours_g["seconds"], "first_loss": ours_g["history"][0]["loss"],
         "last_loss": ours_g["history"][-1]["loss"]},
    ]
    summary = {"model": model.name, "steps": args.steps, "batch_size": args.batch_size, "examples": len(examples),
               "speedup_tokens_per_s": rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"],
               "constrained_step_time_ratio": rows[2]["s_per_step"] / rows[1]["s_per_step"],
               "length_grouped_step_time_ratio": rows[3]["s_per_step"] / rows[1]["s_per_step"],
               "constrained_reference_seconds_once": prepare_s}
    print(write("training", rows, summary, notes=__doc__.split("\n\n")[0]).read_text())


if __name__ == "__main__":
    main()
