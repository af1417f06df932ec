"""Crescendo (Russinovich et al. 2024): a multi-turn attack that escalates gradually over up to T
turns, backing off when the target refuses.

Each behavior is one conversation, driven by the run loop in rounds (`Attack.follow_up`). Each
round, the attacker model (any card on any engine: the embedded one by default, a server with
`engine@attack.attacker_engine=openai`) reads the conversation so far and writes the next user
turn; the run's engine (as the defense wrapped it) answers it and the run's judge labels the answer,
so *every turn is a record* (`params.turn`: its place in the conversation the target saw; `turns` and
`max_backtracks` keep runs with other budgets apart when reports merge them). The
judge in the loop (`attack.judge`, the keyword judge by default) then decides: harmful ends the
conversation (broken); a refusal is a backtrack while `max_backtracks` last (the turn is dropped
from the conversation the target sees, the attacker is told and asks again; the dropped turn
stays a record); otherwise the turn is kept, until `turns` are kept.

Resume: every turn is in records.jsonl as soon as it is judged, and every attacker reply in
`<cache_dir>/crescendo/` as soon as it is drawn; a re-run replays the rounds from both (nothing is
asked twice) and generates from the turn that was in flight, so it ends with the records of an
uninterrupted run. An attacker reply without a question is drawn again `attacker_retries` times
(another seed); then the conversation ends with a failed request (recorded with an error verdict).
A conversation that would outgrow the target's context ends where it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field

from attacks.crescendo.prompts import ANSWERED, INIT, PREFILL, REFUSED, SYSTEM, as_json, parse
from attacks.pair.base import AttackerAttack, AttackerSettings, append_lines
from harness.errors import HarnessError
from harness.model.base import Model
from harness.store.records import latest_by_key
from harness.types import Behavior, Completion, Cost, Frozen, Message, Record, Request, Sampling, content_hash

log = logging.getLogger(__name__)


class CrescendoSettings(AttackerSettings):
    turns: int = Field(10, ge=1)  # T: turns kept in the conversation (backtracked ones not counted)
    max_backtracks: int = Field(10, ge=0)  # refusals dropped and asked again, per conversation
    keep_last: int = Field(6, ge=1)  # attacker conversation: exchanges kept after the opening message
    answer_chars: int = Field(800, ge=1)  # the target's answer as the attacker reads it, cut to this length
    attacker_retries: int = Field(2, ge=0)  # draws again (another seed) when a reply holds no question


class Reply(Frozen):
    """One attacker reply, as logged (`key`: the attacker model and request)."""

    key: str
    reply: str
    tokens: int = 0


@dataclass
class Attempt:
    turn: int
    question: str
    answer: str
    refused: bool


@dataclass
class Conversation:
    behavior: Behavior
    kept: list[tuple[str, str]] = field(default_factory=list)  # (question, answer): what the target sees
    tried: list[Attempt] = field(default_factory=list)  # every judged turn, backtracked ones included
    backtracks: int = 0
    queries: int = 0
    attacker_queries: int = 0
    tokens: int = 0
    pending: Request | None = None
    done: bool = False

    @property
    def turn(self) -> int:
        return len(self.kept) + 1


class CrescendoAttack(AttackerAttack):
    name = "crescendo"
    Settings = CrescendoSettings

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        if sampling.n != 1:
            raise HarnessError(f"attack=crescendo: sampling.n={sampling.n}; a conversation continues from one answer, "
                               "use sampling.n=1")
        self.model, self.sampling, self.failures = model, sampling, []
        self.conversations = {b.id: Conversation(b) for b in behaviors}
        self.replies = {b.id: self.read_log(b) for b in behaviors}
        return self.next_turns()

    def follow_up(self, records: Sequence[Record]) -> list[Request]:
        by_key = {r.completion.request.key: r for r in records}
        answered = []
        for c in self.conversations.values():
            if c.pending is None:
                continue
            record = by_key.get(c.pending.key)
            if record is None:  # its generation failed: the run reports it
                c.done, c.pending = True, None
            else:
                answered.append((c, record.completion))
        verdicts = self.judge.judge([(c.behavior, done) for c, done in answered]) if answered else []
        s = self.settings
        for (c, completion), v in zip(answered, verdicts, strict=True):
            question = c.pending.messages[-1].content
            answer = completion.request.prefill + completion.text
            c.queries, c.tokens, c.pending = c.queries + 1, c.tokens + completion.completion_tokens, None
            if v.harmful:
                c.done = True
                log.info("crescendo %s: broken at turn %d (%d backtracks)", c.behavior.id, c.turn, c.backtracks)
            elif v.refused and c.backtracks < s.max_backtracks:
                c.backtracks += 1
                c.tried.append(Attempt(c.turn, question, answer, refused=True))
            else:
                c.tried.append(Attempt(c.turn, question, answer, refused=False))
                c.kept.append((question, answer))
                c.done = len(c.kept) >= s.turns
        return self.next_turns()

    # --- the attacker ---------------------------------------------------------------------
    def next_turns(self) -> list[Request]:
        live = [c for c in self.conversations.values() if not c.done]
        questions = self.questions(live)
        out = []
        for c in live:
            question, reply = questions[c.behavior.id]
            if question is None:
                c.done = True
                self.failures.append(Completion(
                    request=self.turn(c, ""), finish_reason="error",
                    text=f"attack=crescendo: the attacker's reply held no question after "
                         f"{self.settings.attacker_retries + 1} draws: {reply[:120]!r}"))
                continue
            request = self.turn(c, question)
            if self.target_engine is not None:
                try:
                    self.target_engine.check_fits([request])
                except HarnessError:
                    log.info("crescendo %s: the conversation fills the target's context at turn %d; it ends there",
                             c.behavior.id, c.turn)
                    c.done = True
                    continue
            c.pending = request
            out.append(request)
        return out

    def turn(self, c: Conversation, question: str) -> Request:
        history = [Message(role=role, content=text) for q, a in c.kept for role, text in (("user", q), ("assistant", a))]
        return self.ask(c.behavior, self.sampling, messages=(*history, Message(role="user", content=question)),
                        params={"turn": c.turn, "turns": self.settings.turns, "max_backtracks": self.settings.max_backtracks},
                        cost=Cost(queries=c.queries, attacker_queries=c.attacker_queries, tokens=c.tokens))

    def chat(self, c: Conversation) -> tuple[Message, ...]:
        s, goal = self.settings, c.behavior.query()
        messages = [Message(role="system", content=SYSTEM.format(goal=goal, turns=s.turns)),
                    Message(role="user", content=INIT.format(turns=s.turns))]
        backtracks = sum(a.refused for a in c.tried)
        for a in c.tried[-s.keep_last :]:
            answer = a.answer[: s.answer_chars]
            feedback = (REFUSED.format(answer=answer, backtracks=backtracks, next=a.turn, turns=s.turns, goal=goal)
                        if a.refused else ANSWERED.format(answer=answer, next=a.turn + 1, turns=s.turns, goal=goal))
            messages += [Message(role="assistant", content=as_json(a.question)), Message(role="user", content=feedback)]
        return tuple(messages)

    def questions(self, live: list[Conversation]) -> dict[str, tuple[str | None, str]]:
        """Each live conversation's next question (None: no usable reply in every draw) and the last raw reply."""
        out: dict[str, tuple[str | None, str]] = {}
        todo = list(live)
        for retry in range(self.settings.attacker_retries + 1):
            if not todo:
                break
            asks = {c.behavior.id: Request(behavior_id=c.behavior.id, messages=self.chat(c), prefill=PREFILL,
                                           sampling=self.attacker_sampling(retry), attack="crescendo-attacker",
                                           params={"turn": c.turn, "backtracks": c.backtracks}) for c in todo}
            keys = {bid: content_hash([self.attacker.id, r.key]) for bid, r in asks.items()}
            missing = [r for bid, r in asks.items() if keys[bid] not in self.replies[bid]]
            for completion in self.attacker_engine.generate(missing) if missing else []:
                bid = completion.request.behavior_id
                reply = Reply(key=keys[bid], reply=PREFILL + completion.text, tokens=completion.completion_tokens)
                self.replies[bid][reply.key] = reply
                append_lines(self.log_path(self.conversations[bid].behavior), [reply.model_dump_json()])
            again = []
            for c in todo:
                reply = self.replies[c.behavior.id][keys[c.behavior.id]]
                c.attacker_queries, c.tokens = c.attacker_queries + 1, c.tokens + reply.tokens
                question = parse(reply.reply)
                out[c.behavior.id] = (question, reply.reply)
                if question is None:
                    again.append(c)
            todo = again
        return out

    # --- the log --------------------------------------------------------------------------
    def log_path(self, behavior: Behavior):
        key = content_hash([self.attacker.id, behavior.id, behavior.query()])
        return self.logs(self.model) / f"{behavior.id}-{key}.jsonl"

    def read_log(self, behavior: Behavior) -> dict[str, Reply]:
        path = self.log_path(behavior)
        return latest_by_key(path.read_text(encoding="utf-8"), Reply, path, "crescendo replies") if path.is_file() else {}
