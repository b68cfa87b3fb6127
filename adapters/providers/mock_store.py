"""Where the mock provider server keeps its charges, refunds and counts: a private SQLite database on disk.

The mock keeps every charge and refund for as long as it runs (API.md §6: a repeated key replays the first answer;
§12: the settlement reports list every day's). In dicts that grew the process by about 2 KB a record, for ever;
a soak of the whole stack could not tell that from a leak. SQLite's private temporary database (an empty file
name) keeps at most its page cache in memory, spills the rest to a file of its own, and deletes it on close.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

V = TypeVar("V")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (space TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (space, key));
CREATE TABLE IF NOT EXISTS counts (space TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
                                   PRIMARY KEY (space, key));
CREATE TABLE IF NOT EXISTS tags (space TEXT NOT NULL, tag TEXT NOT NULL, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (space, tag);
"""


def _key(key: Any) -> str:
    """A key (a string or a tuple of strings) as one string, exactly: JSON."""
    return json.dumps(list(key) if isinstance(key, tuple) else [key])


def _unkey(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


class Store:
    """One connection to a private on-disk SQLite database, with tables of pickled values and of counts."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-2000;" + _SCHEMA)

    def clear(self) -> None:
        self.db.executescript("DELETE FROM kv; DELETE FROM counts; DELETE FROM tags;")


class Table(Generic[V]):
    """A dict of pickled values in one space of a `Store`, in insertion order (each key is written once)."""

    def __init__(self, store: Store, space: str) -> None:
        self._db, self._space = store.db, space

    def get(self, key: Any) -> V | None:
        row = self._db.execute("SELECT value FROM kv WHERE space = ? AND key = ?", (self._space, _key(key))).fetchone()
        return None if row is None else pickle.loads(row[0])  # noqa: S301 -- what this process pickled itself

    def __getitem__(self, key: Any) -> V:
        if (value := self.get(key)) is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: V) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (space, key, value) VALUES (?, ?, ?)",
                         (self._space, _key(key), pickle.dumps(value, pickle.HIGHEST_PROTOCOL)))

    def items(self) -> Iterator[tuple[tuple[str, ...], V]]:
        rows = self._db.execute("SELECT key, value FROM kv WHERE space = ? ORDER BY rowid", (self._space,))
        return ((_unkey(key), pickle.loads(value)) for key, value in rows.fetchall())  # noqa: S301

    def values(self) -> Iterator[V]:
        return (value for _, value in self.items())

    def tag(self, tag: Any, key: Any) -> None:
        """File `key` under `tag` too (several keys per tag), for `tagged`."""
        self._db.execute("INSERT INTO tags (space, tag, key) VALUES (?, ?, ?)", (self._space, _key(tag), _key(key)))

    def tagged(self, tag: Any) -> list[V]:
        """The values filed under `tag`, in the order they were."""
        rows = self._db.execute(
            "SELECT kv.value FROM tags JOIN kv ON kv.space = tags.space AND kv.key = tags.key"
            " WHERE tags.space = ? AND tags.tag = ? ORDER BY tags.rowid", (self._space, _key(tag))).fetchall()
        return [pickle.loads(value) for value, in rows]  # noqa: S301


class Counts:
    """A `Counter` in one space of a `Store`: a missing key counts 0."""

    def __init__(self, store: Store, space: str) -> None:
        self._db, self._space = store.db, space

    def __getitem__(self, key: Any) -> int:
        row = self._db.execute("SELECT n FROM counts WHERE space = ? AND key = ?", (self._space, _key(key))).fetchone()
        return 0 if row is None else int(row[0])

    def __setitem__(self, key: Any, n: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO counts (space, key, n) VALUES (?, ?, ?)", (self._space, _key(key), n))
