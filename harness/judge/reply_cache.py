"""Model replies cached on disk: key (a content hash of judge id + prompt) -> reply, in sqlite.

Model-based judges (`harness.judge.base.ModelJudge`) keep their replies here, so re-judging the same
item costs no call. One short connection per use: safe across threads and processes.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any


class ReplyCache:
    """judge id + prompt + response -> judge reply, in sqlite (or memory when no folder is given)."""

    def __init__(self, folder: str | os.PathLike | None, name: str) -> None:
        self.memory: dict[str, str] = {}
        self.path: Path | None = None
        if folder is not None:
            self.path = Path(folder) / "judge" / f"{name}.sqlite"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.run("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")

    def run(self, sql: str, args: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.path, timeout=60)  # one short connection per use: safe across threads and processes
        try:
            with db:
                return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def get(self, key: str) -> str | None:
        if self.path is None:
            return self.memory.get(key)
        rows = self.run("SELECT reply FROM replies WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def put(self, key: str, reply: str) -> None:
        if self.path is None:
            self.memory[key] = reply
            return
        self.run("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)", (key, reply))
