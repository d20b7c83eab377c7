"""The corrections database: what it keeps, its schema versions, files it refuses, and writers
in many threads and processes at once."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from digitnet.corrections import store
from digitnet.errors import DigitnetError


def correction(label: str = "1", answer: int = 7, labels: tuple[int | None, ...] = (1,)) -> store.Correction:
    digits = tuple(store.Seen(np.full((28, 28), i, np.uint8), answer, 0.9, y) for i, y in enumerate(labels))
    return store.Correction("digit" if len(labels) == 1 else "number", b"\x89PNG...", str(answer), 0.9,
                            label, "run-1", "ab" * 32, digits)


@pytest.fixture
def db(tmp_path):
    return store.create(tmp_path / "store" / store.FILE_NAME)


def test_a_new_database_is_marked_migrated_and_in_wal_mode(db):
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == store.LATEST
        assert raw.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID
    assert store.create(db) == db and store.count(db) == 0  # opening again changes nothing


def test_it_keeps_what_was_sent_and_what_the_model_saw(db):
    first = store.add(db, correction("1"))
    second = store.add(db, correction("12", answer=3, labels=(1, 2)))
    rows = store.summaries(db)
    assert [r.id for r in rows] == [second, first]  # newest first
    assert rows[1].label == "1" and rows[1].answer == "7" and rows[1].model_run == "run-1"
    assert rows[1].image_bytes == len(b"\x89PNG...") and rows[1].created.endswith("+00:00")
    data = store.labelled(db)
    assert data.x.shape == (3, 28, 28) and data.y.tolist() == [1, 1, 2]
    assert data.ids.tolist() == [first, second, second] and data.x[2].max() == 1
    with sqlite3.connect(db) as raw:  # nothing about the client but its salted id
        columns = {row[1] for table in ("corrections", "digits")
                   for row in raw.execute(f"PRAGMA table_info({table})")}
    assert not columns & {"ip", "address", "user_agent", "host"}
    assert rows[1].client is None and rows[1].status == "pending"


def test_client_ids_are_salted_per_database(tmp_path):
    one, two = (store.create(tmp_path / name / store.FILE_NAME) for name in ("a", "b"))
    assert store.client_id(one, "203.0.113.9") == store.client_id(one, "203.0.113.9")
    assert store.client_id(one, "203.0.113.9") != store.client_id(two, "203.0.113.9")
    assert store.client_id(one, "203.0.113.9") != store.client_id(one, "203.0.113.10")


def test_review_decides_what_is_learnt(db):
    a = store.add(db, correction(), )
    b = store.add(db, dataclasses.replace(correction(), client="c0ffee00c0ffee00"))
    c = store.add(db, dataclasses.replace(correction(), client="c0ffee00c0ffee00"))
    assert len(store.labelled(db, ["accepted"])) == 0 and len(store.labelled(db)) == 3
    assert store.review(db, "accepted", [a, 999]) == [a]
    assert store.review(db, "rejected", clients=["c0ffee"]) == [b, c]  # by the start of its id
    assert store.labelled(db, ["accepted"]).ids.tolist() == [a]
    assert [p.summary.id for p in store.to_review(db)] == []
    assert store.review(db, "pending", [b]) == [b] and [p.summary.id for p in store.to_review(db)] == [b]
    with pytest.raises(DigitnetError, match="unknown review status"):
        store.review(db, "maybe", [a])


def test_limits_count_each_client_within_the_write(db):
    limits = store.Limits(per_client=2, window_s=600, max_bytes=10**9)
    mine = dataclasses.replace(correction(), client="aaaa")
    store.add(db, mine, limits)
    store.add(db, mine, limits)
    with pytest.raises(store.RateLimited) as refused:
        store.add(db, mine, limits)
    assert 590 <= refused.value.retry_after_s <= 601
    store.add(db, dataclasses.replace(mine, client="bbbb"), limits)  # another client is not held up
    store.add(db, dataclasses.replace(mine, client=None), limits)  # nor a script on the machine
    with pytest.raises(store.StoreFull):
        store.add(db, dataclasses.replace(mine, client="cccc"), store.Limits(max_bytes=1))
    assert store.count(db) == 4


def test_a_version_1_database_keeps_its_rows_and_loses_what_was_sent_beyond_pixels(tmp_path):
    """The images stored as uploaded (a JPEG with its EXIF) are re-encoded as pixels; every row,
    label and 28x28 stays."""
    import io

    from PIL import Image

    path = tmp_path / store.FILE_NAME
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA application_id = {store.APPLICATION_ID}")
    for statement in store.MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    photo = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    Image.fromarray(np.full((600, 400, 3), 200, np.uint8)).save(photo, "JPEG", exif=exif.tobytes())
    for image in (photo.getvalue(), b"not an image at all"):
        cursor = raw.execute("INSERT INTO corrections (created, kind, image, answer, confidence, label, "
                             "model_run, model_sha256) VALUES ('2026-01-01T00:00:00.000+00:00', 'digit', "
                             "?, '7', 0.9, '1', 'run', '')", (image,))
        raw.execute("INSERT INTO digits VALUES (?, 0, ?, 7, 0.9, 1)", (cursor.lastrowid, bytes(784)))
    raw.commit()
    raw.close()
    store.create(path)
    rows = store.summaries(path)
    assert len(rows) == 2 and all(r.status == "pending" and r.label == "1" for r in rows)
    assert len(store.labelled(path)) == 2
    with sqlite3.connect(path) as raw:
        images = [r[0] for r in raw.execute("SELECT image FROM corrections")]
    assert all(i.startswith(b"\x89PNG") and b"PhoneMaker" not in i for i in images)
    assert b"PhoneMaker" not in path.read_bytes()  # overwritten in the file, not only unlinked


def test_a_number_corrected_to_another_length_keeps_no_digit_labels(db):
    store.add(db, correction("123", labels=(None, None)))
    assert len(store.labelled(db)) == 0 and store.count(db) == 1


def test_every_fifth_correction_is_held_out(db):
    for _ in range(10):
        store.add(db, correction())
    learn, held = store.labelled(db).split()
    assert held.ids.tolist() == [5, 10] and len(learn) == 8


def test_delete_removes_the_correction_and_its_images(db):
    ids = [store.add(db, correction()) for _ in range(3)]
    assert store.delete(db, [ids[0], 999]) == [ids[0]]
    assert [r.id for r in store.summaries(db)] == ids[:0:-1] and len(store.labelled(db)) == 2
    assert store.delete(db, None) == ids[1:] and store.count(db) == 0
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM digits").fetchone()[0] == 0


@pytest.mark.parametrize(("content", "message"), [
    (b"just some text, not a database at all" * 40, "not a readable corrections database"),
    ("other", "another program"),
    ("newer", "newer than this digitnet"),
])
def test_files_that_are_not_this_database_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "x.sqlite"
    if content == "other":
        sqlite3.connect(path).execute("CREATE TABLE notes (text)")
    elif content == "newer":
        store.create(path)
        with sqlite3.connect(path) as raw:
            raw.execute(f"PRAGMA user_version = {store.LATEST + 1}")
    else:
        path.write_bytes(content)
    for use in (store.create, store.count):
        with pytest.raises(store.StoreError) as refused:
            use(path)
        assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_database_says_how_to_make_one(tmp_path):
    with pytest.raises(store.StoreError, match="digitnet serve --store"):
        store.summaries(tmp_path / "nowhere.sqlite")


def test_an_older_schema_is_migrated_in_place_keeping_its_rows(db, monkeypatch):
    store.add(db, correction())
    v2 = ("ALTER TABLE corrections ADD COLUMN note TEXT",)
    monkeypatch.setattr(store, "MIGRATIONS", (*store.MIGRATIONS, v2))
    monkeypatch.setattr(store, "LATEST", store.LATEST + 1)
    with pytest.raises(store.StoreError, match="older schema"):
        store.count(db)  # used only once migrated
    store.create(db)
    assert store.count(db) == 1
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == store.LATEST
        assert "note" in {row[1] for row in raw.execute("PRAGMA table_info(corrections)")}


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from digitnet.corrections import store
    seen = (store.Seen(np.zeros((28, 28), np.uint8), 7, 0.5, 1),)
    for i in range(int(sys.argv[2])):
        store.add(sys.argv[1], store.Correction("digit", b"img", "7", 0.5, "1", sys.argv[3], "", seen))
""")


def test_concurrent_threads_and_processes_lose_nothing(db):
    """Two other processes and eight threads write at once: every correction is there once."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), "40", f"process-{k}"])
             for k in range(2)]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: store.add(db, correction()), range(80)))
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(set(ids)) == 80 and store.count(db) == 160
    runs = [r.model_run for r in store.summaries(db)]
    assert runs.count("process-0") == runs.count("process-1") == 40
