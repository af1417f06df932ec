"""What judging cost: a judge's call, token and cache totals, appended to the run folder.

Judges that call a model (`harness.judge.base.ModelJudge`: the rubric judge over an API, the
classifier judge) keep running totals in `usage()`: calls, prompt/completion tokens, cache
hits, errors and, for priced API judges, `cost_usd`. After each run or re-judging, one JSON line with the totals of that
invocation goes to `<run folder>/judge_usage.jsonl` and one line to the log; the folder's
total spend is the sum of its lines. Judges whose `usage()` is None (keyword) write nothing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from harness.judge.base import Judge

log = logging.getLogger(__name__)

FILE = "judge_usage.jsonl"


def record_usage(judge: Judge, folder: Path, step: str, since: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Append the judge's totals (minus `since`, an earlier `usage()`) for `step` (run | rejudge) to the folder."""
    usage = judge.usage()
    if usage is None:
        return None
    if since:
        usage = {k: (v - since[k] if isinstance(v, (int, float)) and isinstance(since.get(k), (int, float)) else v)
                 for k, v in usage.items()}
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": step, "judge": judge.id, **usage}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    cost = entry.get("cost_usd")
    log.info("judge %s: %d calls, %d prompt + %d completion tokens, %d cached, %d errors%s",
             judge.id, entry.get("calls", 0), entry.get("prompt_tokens", 0), entry.get("completion_tokens", 0),
             entry.get("cache_hits", 0), entry.get("errors", 0), f", ${cost:.4f}" if cost is not None else "")
    return entry


def total_usage(folder: Path) -> dict[str, float]:
    """Sums of every numeric field over the folder's judge_usage.jsonl (empty when there is none)."""
    path = folder / FILE
    totals: dict[str, float] = {}
    if not path.is_file():
        return totals
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        for key, value in entry.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return totals
