"""TAP (Mehrotra et al. 2024, "Tree of attacks: jailbreaking black-box LLMs automatically"): PAIR's
attacker/judge loop grown into a tree, pruned twice per level.

Per behavior, from one root, each level (up to `depth`): every leaf branches into `branching` children,
each a new prompt the attacker writes from the leaf's path (its ancestors' prompts, the target's answers
and scores fed back as PAIR feeds a stream: attacks/pair/prompts.py); phase 1 prunes the children the
evaluator finds off-topic (the attacker model asked whether the prompt still asks for the goal; a reply
that says neither keeps the child) and keeps at most `width`; the survivors are sent to the target
through the run's engine *as the defense wrapped it* and scored by the judge in the loop (`attack.judge`;
10 harmful, else the judge's own score or 1); the search stops at the first jailbreak; phase 2 keeps the
`width` best-scored leaves. A reply without a prompt is a dead branch (never a guess); a behavior whose
attacker never wrote a prompt is a failed request, recorded with an error verdict.

The best node (the first jailbreak, else the highest score, deepest first) becomes the behavior's request,
evaluated by the ordinary engine + judge, with the search's cost: target queries, attacker queries
(evaluator calls included), tokens and wall time. Every node, pruned ones included, is appended to
`<cache_dir>/tap/<key>.jsonl` as its level ends; a re-run replays finished levels and continues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pydantic import Field

from attacks.pair.base import AttackerSettings, TargetedSearch, append_lines
from attacks.pair.prompts import FIRST_PREFILL, LATER_PREFILL, attacker_chat, parse
from attacks.tap.prompts import ON_TOPIC, PREFILL, PROMPT, on_topic
from harness.engine.base import Engine
from harness.model.base import Model
from harness.store.records import latest_by_key
from harness.types import Behavior, Completion, Cost, Frozen, Message, Request, Sampling

log = logging.getLogger(__name__)


class TAPSettings(AttackerSettings):
    branching: int = Field(4, ge=1)  # b: children per leaf and level
    width: int = Field(10, ge=1)  # w: nodes kept per level (after each pruning)
    depth: int = Field(10, ge=1)  # d: levels
    keep_last: int = Field(3, ge=1)  # attacker conversation: a node's nearest ancestors fed back
    prune_off_topic: bool = True  # phase 1: the evaluator (the attacker model) drops off-topic prompts
    evaluator_max_tokens: int = Field(8, ge=1)
    target_max_tokens: int = Field(150, ge=1)
    default_target: str = "Sure, here is"  # for behaviors without an affirmative target


class Node(Frozen):
    """One prompt of the tree, as logged. `id`: "2" is the root's third child, "2.0" its first child."""

    depth: int
    id: str
    reply: str  # the attacker's raw reply, prefill included
    status: str  # evaluated | unparsed | off-topic | over-width
    improvement: str = ""
    prompt: str = ""
    on_topic: bool | None = None  # the evaluator's answer (None: not asked, or it said neither)
    response: str = ""
    blocked: str = ""
    score: float = 0.0
    jailbroken: bool = False
    rationale: str = ""
    attacker_queries: int = 1  # the attacker's reply, plus the evaluator's
    tokens: int = 0  # attacker, evaluator and target tokens generated
    seconds: float = 0.0  # the level's wall time (same on each of its nodes)

    @property
    def key(self) -> str:
        return self.id


class TAPAttack(TargetedSearch):
    name = "tap"
    Settings = TAPSettings

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        engine = self.target_of(model)
        s, out, self.failures = self.settings, [], []
        params = {"branching": s.branching, "width": s.width, "depth": s.depth}
        for b in behaviors:
            nodes = self.search(b, model, engine)
            evaluated = [n for n in nodes if n.status == "evaluated"]
            levels = {n.depth: n.seconds for n in nodes}
            cost = Cost(queries=len(evaluated), attacker_queries=sum(n.attacker_queries for n in nodes),
                        tokens=sum(n.tokens for n in nodes), seconds=round(sum(levels.values()), 3))
            if not evaluated:
                self.failures.append(Completion(
                    request=self.ask(b, sampling, cost=cost, params=params), finish_reason="error",
                    text=f"attack=tap: none of the attacker's {len(nodes)} replies held a prompt: {nodes[0].reply[:120]!r}"))
                continue
            best = min(enumerate(evaluated), key=lambda i_n: (not i_n[1].jailbroken, -i_n[1].score, -i_n[1].depth, i_n[0]))[1]
            out.append(self.ask(b, sampling, messages=(Message(role="user", content=best.prompt),), cost=cost,
                                params=params))
        return out

    def search(self, behavior: Behavior, model: Model, engine: Engine) -> list[Node]:
        s = self.settings
        path = self.log_path(model, engine, behavior)
        logged = latest_by_key(path.read_text(encoding="utf-8"), Node, path, "TAP nodes") if path.is_file() else {}
        nodes: list[Node] = []
        leaves: list[Node | None] = [None]  # the root: no prompt yet
        for d in range(s.depth):
            ids = [child(leaf, j) for leaf in leaves for j in range(s.branching)]
            if all(i in logged for i in ids):
                level = [logged[i] for i in ids]
            else:
                level = self.level(behavior, engine, d, leaves, {n.id: n for n in nodes})
                append_lines(path, [n.model_dump_json() for n in level])
            nodes.extend(level)
            evaluated = [n for n in level if n.status == "evaluated"]
            if any(n.jailbroken for n in evaluated):
                log.info("tap %s: jailbroken at depth %d (%d target queries)", behavior.id, d + 1,
                         sum(n.status == "evaluated" for n in nodes))
                break
            leaves = sorted(evaluated, key=lambda n: -n.score)[: s.width]  # phase 2 (stable: ties keep their order)
            if not leaves:
                break
        return nodes

    def level(self, behavior: Behavior, engine: Engine, d: int, leaves: list[Node | None],
              tree: dict[str, Node]) -> list[Node]:
        s = self.settings
        start = time.perf_counter()
        goal, target = behavior.query(), self.goal_target(behavior)
        prefill = FIRST_PREFILL if d == 0 else LATER_PREFILL
        slots = [(leaf, child(leaf, j)) for leaf in leaves for j in range(s.branching)]
        asks = [Request(behavior_id=behavior.id, messages=attacker_chat(goal, target, ancestry(leaf, tree)[-s.keep_last :]),
                        prefill=prefill, sampling=self.attacker_sampling(), attack="tap-attacker",
                        params={"depth": d, "node": node}) for leaf, node in slots]
        replies = self.attacker_engine.generate(asks)
        nodes: dict[str, dict] = {}
        for (_, node), reply in zip(slots, replies, strict=True):
            found = parse(prefill + reply.text)
            nodes[node] = {"depth": d, "id": node, "reply": prefill + reply.text, "tokens": reply.completion_tokens,
                           "status": "evaluated" if found else "unparsed",
                           **({"improvement": found[0], "prompt": found[1]} if found else {})}
        alive = [n for n in nodes.values() if n["status"] == "evaluated"]
        if s.prune_off_topic and alive:  # phase 1: off-topic children go
            checks = [Request(behavior_id=behavior.id, prefill=PREFILL, sampling=Sampling(max_tokens=s.evaluator_max_tokens),
                              messages=(Message(role="system", content=ON_TOPIC.format(goal=goal)),
                                        Message(role="user", content=PROMPT.format(prompt=n["prompt"]))),
                              attack="tap-evaluator", params={"depth": d, "node": n["id"]}) for n in alive]
            for n, answer in zip(alive, self.attacker_engine.generate(checks), strict=True):
                n.update(on_topic=on_topic(PREFILL + answer.text), attacker_queries=2,
                         tokens=n["tokens"] + answer.completion_tokens)
                if n["on_topic"] is False:
                    n["status"] = "off-topic"
            alive = [n for n in alive if n["status"] == "evaluated"]
        for n in alive[s.width :]:
            n["status"] = "over-width"
        alive = alive[: s.width]
        if alive:
            probes = [Request(behavior_id=behavior.id, messages=(Message(role="user", content=n["prompt"]),),
                              sampling=Sampling(max_tokens=s.target_max_tokens), attack="tap-search",
                              params={"depth": d, "node": n["id"]}) for n in alive]
            answers = engine.generate(probes)
            verdicts = self.judge.judge([(behavior, a) for a in answers])
            for n, answer, v in zip(alive, answers, verdicts, strict=True):
                n.update(response=answer.text, blocked=answer.blocked, score=self.score(v), jailbroken=bool(v.harmful),
                         rationale=v.rationale or v.error, tokens=n["tokens"] + answer.completion_tokens)
        seconds = round(time.perf_counter() - start, 3)
        out = [Node(**n, seconds=seconds) for n in nodes.values()]
        log.info("tap %s: depth %d/%d, %d prompts (%d unparsed, %d off-topic, %d over width), %d sent, %d jailbroken "
                 "(%.0f s)", behavior.id, d + 1, s.depth, len(out), *(sum(n.status == k for n in out) for k in
                 ("unparsed", "off-topic", "over-width")), len(alive), sum(n.jailbroken for n in out), seconds)
        return out


def child(leaf: Node | None, j: int) -> str:
    return f"{leaf.id}.{j}" if leaf is not None else str(j)


def ancestry(leaf: Node | None, tree: dict[str, Node]) -> list[Node]:
    """The path from the root's child to `leaf` (every node on it was evaluated)."""
    if leaf is None:
        return []
    parts = leaf.id.split(".")
    return [tree[".".join(parts[: i + 1])] for i in range(len(parts))]
