"""The run loop: behaviors -> (defense, attack) -> requests -> engine -> judge -> records -> tables.

Everything is appended to `<out_dir>/records.jsonl` batch by batch as it is produced. A
re-run of the same configuration reuses every completion already there (same model,
defense, engine settings and request => same key) and only re-judges those whose judge
changed, so an interrupted run resumes and a new judge costs no generation.

A multi-turn attack (crescendo) asks in rounds: after each round the loop hands it that round's
records (`Attack.follow_up`) and generates the next turns it asks for, until it asks none. Every
turn is a record as soon as it is judged; a re-run replays the rounds from the store (each turn
already there is reused), so a killed conversation continues at the turn that was in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis import report
from harness.attack import Attack
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.engine.base import Engine
from harness.errors import RequestsFailed
from harness.judge.base import Judge
from harness.judge.usage import record_usage
from harness.model.base import Model
from harness.run import manifest
from harness.store.records import RecordStore
from harness.training import contamination
from harness.training.distributed import is_main
from harness.types import RECIPE_VERSION, Completion, Record, Request, Sampling, content_hash

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    model: Model
    benchmark: Benchmark
    attack: Attack
    defense: Defense
    judge: Judge
    engine: Callable[[Model], Engine]  # built once the (possibly hardened/tampered) model is known
    sampling: Sampling
    out_dir: Path
    config: dict[str, Any] | None = None  # the resolved Hydra config, for run.json


@dataclass
class Outcome:
    table: pd.DataFrame
    records: list[Record]
    generated: int
    reused: int
    rejudged: int
    seconds: float
    failed: RequestsFailed | None = None  # requests that failed after retries: their completions are missing

    @property
    def judge_errors(self) -> list[Record]:
        return [r for r in self.records if r.verdict.error]


def run_hash(model: Model, defense: Defense, engine: Engine) -> str:
    """The generation set-up's hash (`Record.run`): a stored completion is reused only under the same one."""
    return content_hash({"version": RECIPE_VERSION, "model": model.id, "defense": defense.describe(),
                         "engine": engine.describe()})


def run(exp: Experiment) -> Outcome:
    start = time.perf_counter()
    exp.judge.preflight()  # keys, servers, packages: before any training, loading or generating
    exp.engine(exp.model).preflight()
    started = manifest.now()
    settings = {"model": exp.model.id, "benchmark": exp.benchmark.describe(), "attack": exp.attack.describe(),
                "defense": exp.defense.describe(), "judge": exp.judge.id, "sampling": exp.sampling.model_dump()}
    manifest.write(exp.out_dir, status="running", started=started, config=exp.config, settings=settings,
                   recipe_version=RECIPE_VERSION)
    behaviors = exp.benchmark.load()
    log.info("benchmark %s: %d behaviors", exp.benchmark.name, len(behaviors))
    model = exp.attack.tamper(exp.defense.harden(exp.model), exp.defense)
    if not is_main():  # under `accelerate launch` every process trained; the main one alone evaluates
        return Outcome(table=pd.DataFrame(), records=[], generated=0, reused=0, rejudged=0, seconds=time.perf_counter() - start)
    behaviors = contamination.guard(model, behaviors, exp.benchmark.name, exp.benchmark.exclude_trained, exp.out_dir,
                                    exp.attack.optimized_on)
    engine = exp.defense.wrap(exp.engine(model))
    exp.attack.attach(engine, exp.defense)  # attacks that query the target (pair) see the defended pipeline
    setup = run_hash(model, exp.defense, engine)
    by_id = {b.id: b for b in behaviors}

    def record(completion: Completion, verdict) -> Record:
        return Record(run=setup, model=model.name, defense=exp.defense.name, benchmark=exp.benchmark.name,
                      behavior=by_id[completion.request.behavior_id], completion=completion, verdict=verdict)

    def judged(completions: list[Completion]) -> list[Record]:
        pairs = [(by_id[c.request.behavior_id], c) for c in completions]
        return [record(c, v) for c, v in zip(completions, exp.judge.judge_records(pairs), strict=True)]

    store = RecordStore(exp.out_dir / "records.jsonl")
    existing = store.load(repair=True)  # the writer, under the run folder's lock: mends a torn last line
    keys: dict[str, Request] = {}  # every sample asked, over all rounds
    have: dict[str, Record] = {}
    counts = {"generated": 0, "reused": 0, "rejudged": 0}

    def settle(requests: list[Request], failures: list[Completion], first: bool) -> RequestsFailed | None:
        """One round: reuse what the store holds, re-judge stale verdicts, record failures, generate the rest."""
        mine = {f"{setup}:{r.key}:{s}": r for r in requests for s in range(r.sampling.n)}
        lost = {f"{setup}:{c.request.key}:{c.sample}": c for c in failures}
        keys.update(mine)
        keys.update({k: c.request for k, c in lost.items()})
        found = {k: existing[k] for k in [*mine, *lost] if k in existing}
        have.update(found)
        counts["reused"] += len(found)
        todo: list[Request] = list({mine[k].key: mine[k] for k in mine if k not in found}.values())
        # a new judge, or a failed verdict (a failed request keeps its error verdict)
        stale = [r for r in found.values() if r.verdict.judge != exp.judge.id
                 or (r.verdict.error and r.completion.finish_reason != "error")]
        if todo:
            engine.check_fits(todo)  # before any judging or generation
        if found and first:
            log.info("resuming: %d of %d completions already in %s; %d to generate, %d to re-judge",
                     len(found), len(mine), store.path, sum(r.sampling.n for r in todo), len(stale))
        counts["rejudged"] += len(stale)
        for fresh in (judged([r.completion for r in stale]), judged([c for k, c in lost.items() if k not in found])):
            store.append(fresh)
            have.update({r.key: r for r in fresh})
        if todo:
            try:
                for batch in map(engine.stamped, engine.stream(todo)):  # each with the messages the model saw
                    # a partial request (fewer than n samples stored) regenerates all n; keep the stored ones
                    fresh = [r for r in judged(batch) if r.key not in have]
                    store.append(fresh)
                    have.update({r.key: r for r in fresh})
                    counts["generated"] += len(batch)
            except RequestsFailed as exc:  # what succeeded is stored; the table shows it, the caller reports the rest
                return exc
        return None

    requests = exp.attack.requests(behaviors, model, exp.sampling)
    n_requests = len(requests)
    failed = settle(requests, exp.attack.take_failures(), first=True)
    while failed is None:  # a multi-turn attack asks again from the last round's records; others stop here
        previous = [have[k] for k in (f"{setup}:{r.key}:{s}" for r in requests for s in range(r.sampling.n)) if k in have]
        requests = exp.attack.follow_up(previous)
        failures = exp.attack.take_failures()
        if not requests and not failures:
            break
        n_requests += len(requests)
        log.info("%s: next round, %d requests (%d failed to build)", exp.attack.name, len(requests), len(failures))
        failed = settle(requests, failures, first=False)
    generated, reused, rejudged = counts["generated"], counts["reused"], counts["rejudged"]
    records = [have[k] for k in keys if k in have]
    notes = [exp.benchmark.sampling_note] if exp.benchmark.sampling_note else []
    table = (report.write(records, exp.out_dir, sampling=notes, contaminated=contamination.load_run(exp.out_dir))
             if records else pd.DataFrame())  # none: every request failed
    record_usage(exp.judge, exp.out_dir, "run")  # calls, tokens, cost of model-based judges -> judge_usage.jsonl
    outcome = Outcome(table=table, records=records, generated=generated, reused=reused,
                      rejudged=rejudged, seconds=time.perf_counter() - start, failed=failed)
    manifest.write(exp.out_dir, status="done", finished=manifest.now(), seconds=round(outcome.seconds, 1),
                   run_hash=setup, engine=engine.describe(), trained_model=model.id,
                   counts={"behaviors": len(behaviors), "requests": n_requests, "records": len(records),
                           "generated": generated, "reused": reused, "rejudged": rejudged})
    return outcome


def evaluate(model: Model, benchmark: Benchmark, attack: Attack, defense: Defense, judge: Judge,
             engine: Callable[[Model], Engine], sampling: Sampling, out_dir: str | Path) -> pd.DataFrame:
    """One cell of an experiment: an ordinary run in `out_dir` (it resumes like any run); its ASR table.

    Every experiment driver (experiments/) evaluates through this, so a cell is exactly what
    `python -m harness` would run with the same plugins."""
    return run(Experiment(model, benchmark, attack, defense, judge, engine, sampling, Path(out_dir))).table
