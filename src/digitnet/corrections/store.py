"""The corrections database: one SQLite file, safe for many threads and server processes.

Each correction keeps what the person sent (the image file as it came, the label they chose)
and what the server computed from it (the model's answer and confidence, each 28x28 image the
model saw, the model's identity, the time). Nothing else: no address, no browser, no cookie.

- WAL journal: readers never wait for the writer, and a crash loses no committed correction.
- Every write is one ``BEGIN IMMEDIATE`` transaction, and every connection waits up to
  ``BUSY_TIMEOUT_S`` for the lock, so concurrent requests and processes queue rather than fail.
- The schema version is SQLite's ``user_version``; ``MIGRATIONS[i]`` brings a file from
  version i to i + 1, all in one transaction, so two processes opening a new file at once
  migrate it once. ``application_id`` marks the file as this database, so another program's
  SQLite file, a newer schema or a damaged file is refused in one line before it is used.
- A connection per operation: SQLite connections must not be shared between threads, and
  opening one costs well under a millisecond.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from digitnet.errors import DigitnetError

FILE_NAME = "corrections.sqlite"
APPLICATION_ID = 0x64676E63  # "dgnc": this file is a digitnet corrections database
BUSY_TIMEOUT_S = 30.0
KINDS = ("digit", "number")
HOLDOUT_EVERY = 5  # every fifth correction (by id) is held out from fine-tuning, to measure it

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # version 1
        """CREATE TABLE corrections (
            id INTEGER PRIMARY KEY,
            created TEXT NOT NULL,        -- UTC, ISO 8601 with milliseconds
            kind TEXT NOT NULL CHECK (kind IN ('digit', 'number')),
            image BLOB NOT NULL,          -- the image file exactly as it was sent
            answer TEXT NOT NULL,         -- the model's answer: '7', '4 or 9?', 'not a digit', '721'
            confidence REAL NOT NULL,     -- its probability (a number's: its least sure digit's)
            label TEXT NOT NULL,          -- what the person says it is
            model_run TEXT NOT NULL,      -- the served run's directory name
            model_sha256 TEXT NOT NULL    -- SHA-256 of its model.safetensors
        )""",
        """CREATE TABLE digits (
            correction_id INTEGER NOT NULL REFERENCES corrections (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,    -- left to right
            image28 BLOB NOT NULL CHECK (length(image28) = 784),  -- what the model saw, row by row
            answer INTEGER NOT NULL CHECK (answer BETWEEN 0 AND 10),  -- 10: not a digit
            probability REAL NOT NULL,
            label INTEGER CHECK (label BETWEEN 0 AND 10),  -- NULL: a number corrected to another length
            PRIMARY KEY (correction_id, position)
        )""",
    ),
)
LATEST = len(MIGRATIONS)


class StoreError(DigitnetError):
    """The database cannot be used (damaged, another program's, newer, busy): the server's
    problem, not the client's."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Seen:
    """One 28x28 image the model was given, what it answered and what it should have."""

    image28: np.ndarray  # uint8 (28, 28), white on black
    answer: int  # class index: 0-9, or 10 for "not a digit"
    probability: float
    label: int | None  # class index, or None when the person's text does not say


@dataclass(frozen=True)
class Correction:
    kind: str  # "digit" or "number"
    image: bytes
    answer: str
    confidence: float
    label: str
    model_run: str
    model_sha256: str
    digits: tuple[Seen, ...]
    created: str = field(default_factory=now)


@dataclass(frozen=True)
class Summary:
    """A correction without its images, as ``digitnet corrections list`` shows it."""

    id: int
    created: str
    kind: str
    answer: str
    confidence: float
    label: str
    model_run: str
    image_bytes: int


def path_in(store_dir: str | Path) -> Path:
    return Path(store_dir) / FILE_NAME


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """SQLite's errors as one line naming the file and the fix."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise StoreError(f"{path}: busy for over {BUSY_TIMEOUT_S:g} s ({e}); try again") from e
        raise StoreError(f"{path}: cannot use the corrections database ({e}); check the file "
                         "and its folder are readable and writable") from e
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: not a readable corrections database ({e}); move it away to "
                         "start a new one, or restore it from a backup") from e


def _open(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE itself
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _check(db: sqlite3.Connection, path: Path) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise StoreError(f"{path}: an SQLite file of another program, not a digitnet corrections "
                         "database; choose another file")
    if version > LATEST:
        raise StoreError(f"{path}: schema version {version} is newer than this digitnet's "
                         f"({LATEST}); upgrade digitnet")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the lock from its start (no deadlock between writers)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def create(path: str | Path) -> Path:
    """Make the database (and its folder) if needed, migrated to ``LATEST``, in WAL mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite_errors(path), contextlib.closing(_open(path)) as db:
        with transaction(db):  # one process migrates; the others wait, then find it done
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # a new, empty file
            _check(db, path)
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {LATEST}")
        # Only once the file is known to be ours; the mode is kept in the file.
        db.execute("PRAGMA journal_mode = WAL")
    return path


@contextlib.contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A checked connection to an existing database; SQLite errors become ``StoreError``."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no corrections database here; 'digitnet serve --store "
                         f"{path.parent}' makes one, or pass the right file")
    with sqlite_errors(path), contextlib.closing(_open(path)) as db:
        _check(db, path)
        if db.execute("PRAGMA user_version").fetchone()[0] < LATEST:
            raise StoreError(f"{path}: an older schema; 'digitnet serve --store {path.parent}' "
                             "migrates it")
        yield db


def add(path: str | Path, correction: Correction) -> int:
    """Store one correction with its digits, atomically; its id."""
    c = correction
    if c.kind not in KINDS:
        raise DigitnetError(f"unknown kind {c.kind!r}; one of {', '.join(KINDS)}")
    with connect(path) as db, transaction(db):
        cursor = db.execute(
            "INSERT INTO corrections (created, kind, image, answer, confidence, label, model_run, "
            "model_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c.created, c.kind, c.image, c.answer, c.confidence, c.label, c.model_run, c.model_sha256))
        ident = int(cursor.lastrowid)
        db.executemany(
            "INSERT INTO digits (correction_id, position, image28, answer, probability, label) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(ident, i, np.ascontiguousarray(d.image28, np.uint8).tobytes(), d.answer,
              d.probability, d.label) for i, d in enumerate(c.digits)])
    return ident


def summaries(path: str | Path, limit: int | None = None) -> list[Summary]:
    """The newest ``limit`` corrections (all without a limit), newest first."""
    with connect(path) as db:
        rows = db.execute(
            "SELECT id, created, kind, answer, confidence, label, model_run, length(image) "
            "FROM corrections ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,))
        return [Summary(*row) for row in rows]


def count(path: str | Path) -> int:
    with connect(path) as db:
        return db.execute("SELECT count(*) FROM corrections").fetchone()[0]


def delete(path: str | Path, ids: Iterable[int] | None) -> list[int]:
    """Delete the corrections ``ids`` (all of them for None), their images overwritten in the
    file rather than only unlinked (``secure_delete``); the ids that were there."""
    with connect(path) as db:
        db.execute("PRAGMA secure_delete = ON")
        with transaction(db):
            if ids is None:
                found = [row[0] for row in db.execute("SELECT id FROM corrections")]
            else:
                wanted = sorted(set(ids))
                found = [i for i in wanted
                         if db.execute("SELECT 1 FROM corrections WHERE id = ?", (i,)).fetchone()]
            db.executemany("DELETE FROM corrections WHERE id = ?", [(i,) for i in found])
        return found


@dataclass(frozen=True)
class Labelled:
    """The 28x28 images that have a label: ``x`` uint8 (N, 28, 28), ``y`` int64 (N,) class
    indices (10: not a digit), ``ids`` (N,) the correction each came from."""

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Labelled:
        return Labelled(self.x[mask], self.y[mask], self.ids[mask])

    def split(self, every: int = HOLDOUT_EVERY) -> tuple[Labelled, Labelled]:
        """(the rest, held out): the images of every ``every``-th correction by id are held
        out, so a number's digits stay on one side and the split stays put as corrections come."""
        held = self.ids % every == 0
        return self.take(~held), self.take(held)


def labelled(path: str | Path) -> Labelled:
    """Every labelled 28x28 image, in the order the corrections came, checked first."""
    with connect(path) as db:
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise StoreError(f"{path}: damaged ({problem}); restore it from a backup")
        rows = db.execute("SELECT correction_id, image28, label FROM digits WHERE label IS NOT NULL "
                          "ORDER BY correction_id, position").fetchall()
    x = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(-1, 28, 28)
    return Labelled(x.copy(), np.array([r[2] for r in rows], np.int64),
                    np.array([r[0] for r in rows], np.int64))
