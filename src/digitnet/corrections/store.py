"""The corrections database: one SQLite file, safe for many threads and server processes.

Each correction keeps the label the person chose and what the server computed from what they
sent: a small PNG of the ink (pixels only, re-encoded: never the file as it came, with its
EXIF, GPS or padding), each 28x28 image the model saw, the model's answer, confidence and
identity, the time, and a salted hash of the client (``client_id``), so that one source's
corrections can be found and removed. No address, no browser, no cookie.

- Bounded: ``Limits`` caps the corrections one client stores per window (``RateLimited``) and
  the file's size (``StoreFull``), both checked inside the writing transaction, so every
  server process sharing the file keeps the same count.
- Reviewed: a correction is ``pending`` until an admin accepts or rejects it
  (``review``); ``digitnet finetune`` learns only from accepted ones unless told otherwise.

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
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from digitnet.errors import DigitnetError

FILE_NAME = "corrections.sqlite"
APPLICATION_ID = 0x64676E63  # "dgnc": this file is a digitnet corrections database
BUSY_TIMEOUT_S = 30.0
KINDS = ("digit", "number")
HOLDOUT_EVERY = 5  # every fifth correction (by id) is held out from fine-tuning, to measure it
STATUSES = ("pending", "accepted", "rejected")
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id names no correction

def _add_salt(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO secrets (name, value) VALUES ('client_salt', ?)", (secrets.token_hex(32),))


def _clean_images(db: sqlite3.Connection) -> None:
    """Version 2 keeps pixels only: each image stored before as it was sent is replaced by the
    ink re-encoded (or, if it no longer decodes, the first 28x28 the model saw); the row, its
    label and its 28x28 images stay. ``secure_delete`` overwrites the old bytes in the file."""
    from digitnet.corrections import pictures  # decoding images: only when migrating

    rows = db.execute("SELECT id, image FROM corrections").fetchall()
    for ident, data in rows:
        seen = db.execute("SELECT image28 FROM digits WHERE correction_id = ? ORDER BY position "
                          "LIMIT 1", (ident,)).fetchone()
        fallback = np.frombuffer(seen[0], np.uint8).reshape(28, 28) if seen else None
        db.execute("UPDATE corrections SET image = ? WHERE id = ?",
                   (pictures.cleaned(data, fallback), ident))


Step = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    (  # version 1
        """CREATE TABLE corrections (
            id INTEGER PRIMARY KEY,
            created TEXT NOT NULL,        -- UTC, ISO 8601 with milliseconds
            kind TEXT NOT NULL CHECK (kind IN ('digit', 'number')),
            image BLOB NOT NULL,          -- the file as sent; from version 2 a PNG of the ink
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
    (  # version 2: pixels only, a client hash, a review status
        "ALTER TABLE corrections ADD COLUMN client TEXT",  # HMAC of the client's address; NULL before
        "ALTER TABLE corrections ADD COLUMN status TEXT NOT NULL DEFAULT 'pending' "
        "CHECK (status IN ('pending', 'accepted', 'rejected'))",
        "CREATE INDEX corrections_by_client ON corrections (client, created)",
        "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        _add_salt,
        _clean_images,
    ),
)
LATEST = len(MIGRATIONS)


class StoreError(DigitnetError):
    """The database cannot be used (damaged, another program's, newer, busy): the server's
    problem, not the client's."""


class RateLimited(DigitnetError):
    """One client stored its share of corrections for now."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreFull(DigitnetError):
    """The database reached its size limit: an admin has to review, export or delete."""


@dataclass(frozen=True)
class Limits:
    """What one client, and everyone together, may store."""

    per_client: int = 30  # corrections one client may store per window
    window_s: int = 600  # seconds
    max_bytes: int = 200 * 1024 * 1024  # the database file's size, beyond which nothing is added


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
    image: bytes  # a PNG of the ink, re-encoded (``pictures``), never the file as it was sent
    answer: str
    confidence: float
    label: str
    model_run: str
    model_sha256: str
    digits: tuple[Seen, ...]
    created: str = field(default_factory=now)
    client: str | None = None  # ``client_id`` of who sent it


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
    client: str | None
    status: str


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
    db.execute("PRAGMA secure_delete = ON")  # what is deleted or replaced is overwritten in the file
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
            for steps in MIGRATIONS[version:]:
                for step in steps:
                    step(db) if callable(step) else db.execute(step)
            db.execute(f"PRAGMA user_version = {LATEST}")
        # Only once the file is known to be ours; the mode is kept in the file.
        db.execute("PRAGMA journal_mode = WAL")
    return path


@contextlib.contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A checked connection to an existing database (its file, or the store folder holding
    it, as given to ``digitnet serve --store``); SQLite errors become ``StoreError``."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise StoreError(f"{path}: no corrections database here; 'digitnet serve --store "
                         f"{path.parent}' makes one, or pass the right file")
    with sqlite_errors(path), contextlib.closing(_open(path)) as db:
        _check(db, path)
        if db.execute("PRAGMA user_version").fetchone()[0] < LATEST:
            raise StoreError(f"{path}: an older schema; 'digitnet serve --store {path.parent}' "
                             "migrates it")
        yield db


def client_id(path: str | Path, address: str) -> str:
    """A client's address as 16 hex digits of its HMAC-SHA256 under this database's own random
    salt: the same client always gets the same id here, and the address cannot be read back
    (nor matched against another server's ids)."""
    with connect(path) as db:
        salt = db.execute("SELECT value FROM secrets WHERE name = 'client_salt'").fetchone()[0]
    return hmac.new(salt.encode(), address.encode(), hashlib.sha256).hexdigest()[:16]


def _within_limits(db: sqlite3.Connection, c: Correction, limits: Limits) -> None:
    """Raise RateLimited or StoreFull when ``c`` may not be stored now (inside the writing
    transaction, so that concurrent writers count each other)."""
    if c.client is not None:
        since = (datetime.now(UTC) - timedelta(seconds=limits.window_s)).isoformat(timespec="milliseconds")
        recent = db.execute("SELECT count(*), min(created) FROM corrections WHERE client = ? AND "
                            "created > ?", (c.client, since)).fetchone()
        if recent[0] >= limits.per_client:
            oldest = datetime.fromisoformat(recent[1])
            wait = max(1, int((oldest - datetime.now(UTC)).total_seconds()) + limits.window_s + 1)
            raise RateLimited(f"{limits.per_client} corrections from you in {limits.window_s // 60} "
                              f"minutes is the most this server keeps; try again in {wait} s", wait)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    used = (db.execute("PRAGMA page_count").fetchone()[0]
            - db.execute("PRAGMA freelist_count").fetchone()[0]) * page
    if used + len(c.image) + 784 * len(c.digits) > limits.max_bytes:
        raise StoreFull(f"this server's corrections store is full ({limits.max_bytes / 2**20:g} MB); "
                        "nothing more is kept until its admin reviews, exports or deletes corrections")


def add(path: str | Path, correction: Correction, limits: Limits | None = None) -> int:
    """Store one correction with its digits, atomically; its id. With ``limits``, refuse it
    (``RateLimited``, ``StoreFull``) when its client or the store has had its share."""
    c = correction
    if c.kind not in KINDS:
        raise DigitnetError(f"unknown kind {c.kind!r}; one of {', '.join(KINDS)}")
    with connect(path) as db, transaction(db):
        if limits is not None:
            _within_limits(db, c, limits)
        cursor = db.execute(
            "INSERT INTO corrections (created, kind, image, answer, confidence, label, model_run, "
            "model_sha256, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (c.created, c.kind, c.image, c.answer, c.confidence, c.label, c.model_run, c.model_sha256,
             c.client))
        ident = int(cursor.lastrowid)
        db.executemany(
            "INSERT INTO digits (correction_id, position, image28, answer, probability, label) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(ident, i, np.ascontiguousarray(d.image28, np.uint8).tobytes(), d.answer,
              d.probability, d.label) for i, d in enumerate(c.digits)])
    return ident


def summaries(path: str | Path, limit: int | None = None, status: str | None = None) -> list[Summary]:
    """The newest ``limit`` corrections (all without a limit; only those of ``status`` with
    one), newest first."""
    with connect(path) as db:
        rows = db.execute(
            "SELECT id, created, kind, answer, confidence, label, model_run, length(image), client, "
            "status FROM corrections WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2",
            (status, -1 if limit is None else limit))
        return [Summary(*row) for row in rows]


def count(path: str | Path) -> int:
    with connect(path) as db:
        return db.execute("SELECT count(*) FROM corrections").fetchone()[0]


def _matching(db: sqlite3.Connection, ids: Iterable[int] | None, clients: Iterable[str] = ()
              ) -> list[int]:
    """The ids of the corrections named by id, or sent by a client named by its id (or the
    start of it); every correction for ``ids`` None and no clients."""
    clients = list(clients)
    if ids is None and not clients:
        return [row[0] for row in db.execute("SELECT id FROM corrections ORDER BY id")]
    found = set()
    for i in set(ids or ()):
        if 0 < i <= MAX_ID and db.execute("SELECT 1 FROM corrections WHERE id = ?", (i,)).fetchone():
            found.add(i)
    for client in clients:
        pattern = client.replace("%", "").replace("_", "") + "%"
        found.update(row[0] for row in db.execute(
            "SELECT id FROM corrections WHERE client LIKE ?", (pattern,)))
    return sorted(found)


def delete(path: str | Path, ids: Iterable[int] | None, clients: Iterable[str] = ()) -> list[int]:
    """Delete the corrections ``ids`` and those of ``clients`` (all of them for None and no
    clients), their images overwritten in the file rather than only unlinked
    (``secure_delete``); the ids that were there."""
    with connect(path) as db, transaction(db):
        found = _matching(db, ids, clients)
        db.executemany("DELETE FROM corrections WHERE id = ?", [(i,) for i in found])
        return found


def review(path: str | Path, status: str, ids: Iterable[int] = (), clients: Iterable[str] = ()
           ) -> list[int]:
    """Mark the corrections ``ids`` and those of ``clients`` accepted, rejected or pending
    again; the ids that were there."""
    if status not in STATUSES:
        raise DigitnetError(f"unknown review status {status!r}; one of {', '.join(STATUSES)}")
    with connect(path) as db, transaction(db):
        found = _matching(db, list(ids), clients)
        db.executemany("UPDATE corrections SET status = ? WHERE id = ?", [(status, i) for i in found])
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


def labelled(path: str | Path, statuses: Iterable[str] = STATUSES) -> Labelled:
    """Every labelled 28x28 image of a correction whose review status is one of ``statuses``
    (``("accepted",)``: what an admin let through), in the order the corrections came, the
    file checked first."""
    wanted = sorted(set(statuses))
    if unknown := set(wanted) - set(STATUSES):
        raise DigitnetError(f"unknown review status {', '.join(unknown)}; use {', '.join(STATUSES)}")
    with connect(path) as db:
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise StoreError(f"{path}: damaged ({problem}); restore it from a backup")
        rows = db.execute(
            "SELECT d.correction_id, d.image28, d.label FROM digits d JOIN corrections c ON "
            f"c.id = d.correction_id WHERE d.label IS NOT NULL AND c.status IN "
            f"({', '.join('?' * len(wanted))}) ORDER BY d.correction_id, d.position", wanted).fetchall()
    x = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(-1, 28, 28)
    return Labelled(x.copy(), np.array([r[2] for r in rows], np.int64),
                    np.array([r[0] for r in rows], np.int64))


@dataclass(frozen=True)
class Pending:
    """A correction as the review's contact sheet shows it."""

    summary: Summary
    image: bytes  # the PNG of the ink
    digits: np.ndarray  # uint8 (n, 28, 28), what the model saw


def to_review(path: str | Path, limit: int | None = None) -> list[Pending]:
    """The oldest ``limit`` pending corrections (all without a limit), with their pictures."""
    with connect(path) as db:
        rows = db.execute(
            "SELECT id, created, kind, answer, confidence, label, model_run, length(image), client, "
            "status, image FROM corrections WHERE status = 'pending' ORDER BY id LIMIT ?",
            (-1 if limit is None else limit,)).fetchall()
        found = []
        for *summary, image in rows:
            digits = [r[0] for r in db.execute("SELECT image28 FROM digits WHERE correction_id = ? "
                                               "ORDER BY position", (summary[0],))]
            x = np.frombuffer(b"".join(digits), np.uint8).reshape(-1, 28, 28)
            found.append(Pending(Summary(*summary), image, x.copy()))
        return found
