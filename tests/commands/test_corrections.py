"""``digitnet serve --store``, ``digitnet corrections`` and ``digitnet finetune`` from the command line."""

from __future__ import annotations

import numpy as np
import pytest
import uvicorn

from digitnet.corrections import store
from digitnet.inference import served


@pytest.fixture
def no_serving(monkeypatch):
    """uvicorn's loop replaced: what it would have served is recorded instead."""
    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: started.append(self.config.app))
    return started


def test_serve_makes_the_store_and_names_its_run(cli, trained_run, tmp_path, no_serving, monkeypatch):
    monkeypatch.delenv("DIGITNET_ADMIN_TOKEN", raising=False)
    code, out, err = cli("serve", "--run", trained_run, "--port", "0", "--store", tmp_path / "s")
    assert code == 0, err
    assert (tmp_path / "s" / store.FILE_NAME).is_file() and store.count(tmp_path / "s" / store.FILE_NAME) == 0
    assert served.read(tmp_path / "s") == trained_run.resolve()
    assert "admin routes off (set DIGITNET_ADMIN_TOKEN)" in out and len(no_serving) == 1


def test_a_failed_start_leaves_no_store(cli, tmp_path):
    code, _, err = cli("serve", "--run", tmp_path / "nothing", "--store", tmp_path / "s")
    assert code == 2 and "no such run directory" in err and not (tmp_path / "s").exists()


def test_a_short_admin_token_is_refused(cli, trained_run, tmp_path, monkeypatch, no_serving):
    monkeypatch.setenv("DIGITNET_ADMIN_TOKEN", "secret")
    code, _, err = cli("serve", "--run", trained_run, "--port", "0", "--store", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "at least 16" in err and not no_serving


def add(db, label: int, n: int = 1) -> None:
    seen = (store.Seen(np.full((28, 28), label, np.uint8), 7, 0.8, label),)
    for _ in range(n):
        store.add(db, store.Correction("digit", b"png", "7", 0.8, str(label), "run", "", seen))


def test_list_export_and_delete(cli, tmp_path):
    db = store.create(tmp_path / "c.sqlite")
    add(db, 1, 4)
    add(db, 2)
    code, out, _ = cli("corrections", "list", "--db", db, "--limit", "2")
    assert code == 0 and "2 of 5 corrections" in out and out.count(" 7 ") >= 2
    code, out, _ = cli("corrections", "review", "--db", db, "--accept", "1", "2", "3", "4", "5")
    assert code == 0 and "accepted 5 corrections" in out
    code, out, _ = cli("corrections", "export", "--db", db, "--out", tmp_path / "idx")
    assert code == 0 and "5 labelled images (4 to learn from, 1 held out)" in out
    assert (tmp_path / "idx" / "t10k-labels-idx1-ubyte").is_file()
    code, out, _ = cli("corrections", "export", "--db", db, "--format", "png", "--out", tmp_path / "png")
    assert code == 0 and len(list((tmp_path / "png" / "1").iterdir())) == 4
    code, out, _ = cli("corrections", "delete", "--db", db, "1", "9")
    assert code == 0 and "deleted 1 corrections" in out and "no correction 9" in out
    code, out, _ = cli("corrections", "delete", "--db", db, "--all")
    assert code == 0 and "deleted 4" in out and store.count(db) == 0


def test_the_store_folder_names_its_database(cli, tmp_path):
    """--db takes the folder given to 'digitnet serve --store' as well as the file in it."""
    add(store.create(tmp_path / "store" / store.FILE_NAME), 3, 2)
    code, out, _ = cli("corrections", "list", "--db", tmp_path / "store")
    assert code == 0 and "2 of 2 corrections" in out
    (tmp_path / "empty").mkdir()
    code, _, err = cli("corrections", "list", "--db", tmp_path / "empty")
    assert code == 2 and f"'digitnet serve --store {tmp_path / 'empty'}' makes one" in err


@pytest.mark.parametrize(("argv", "words"), [
    (["corrections", "list", "--db", "{tmp}/none.sqlite"], "no corrections database"),
    (["corrections", "delete", "--db", "{db}"], "--all"),
    (["corrections", "export", "--db", "{db}", "--out", "{tmp}", "--format", "png"], "not an empty folder"),
    (["finetune", "--corrections", "{db}", "--run", "{tmp}/none"], "no such run directory"),
])
def test_mistakes_are_one_line(cli, tmp_path, argv, words):
    db = store.create(tmp_path / "c.sqlite")
    code, out, err = cli(*[a.format(tmp=tmp_path, db=db) for a in argv])
    assert code == 2 and err.count("\n") == 1 and words in err


def test_review_writes_a_contact_sheet_and_marks_by_id_or_client(cli, tmp_path):
    import cv2

    db = store.create(tmp_path / "c.sqlite")
    seen = (store.Seen(np.full((28, 28), 200, np.uint8), 7, 0.8, 1),)
    picture = cv2.imencode(".png", np.full((40, 30), 90, np.uint8))[1].tobytes()
    for client in ("aaaa1111aaaa1111", "aaaa1111aaaa1111", "bbbb2222bbbb2222"):
        store.add(db, store.Correction("digit", picture, "7", 0.8, "1", "run", "", seen, client=client))
    code, out, _ = cli("corrections", "review", "--db", db, "--sheet", tmp_path / "sheet.png")
    assert code == 0 and "3 pending corrections" in out
    sheet = cv2.imread(str(tmp_path / "sheet.png"), cv2.IMREAD_GRAYSCALE)
    assert sheet.shape[0] > 150 and (sheet == 200).any() and (sheet == 90).any()  # the 28x28 and the picture
    code, out, _ = cli("corrections", "review", "--db", db, "--reject-client", "aaaa1111", "--accept", "3")
    assert code == 0 and "accepted 1" in out and "rejected 2" in out
    assert [r.status for r in store.summaries(db)] == ["accepted", "rejected", "rejected"]
    code, out, _ = cli("corrections", "review", "--db", db, "--sheet", tmp_path / "sheet.png")
    assert code == 0 and "nothing pending" in out


def test_finetune_learns_only_what_was_accepted(cli, tmp_path):
    db = store.create(tmp_path / "c.sqlite")
    add(db, 1, 3)
    code, _, err = cli("finetune", "--corrections", db)
    assert code == 2 and "no accepted corrections" in err and "3 pending" in err and err.count("\n") == 1
