"""Corrections over HTTP: what is kept, bad input refused as for prediction, the admin routes
behind a token, and the served model swapped while requests are in flight."""

from __future__ import annotations

import base64
import io
import shutil
import sqlite3
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from web_helpers import number_on_paper, on_paper, png

from digitnet.corrections import store
from digitnet.inference import served
from digitnet.web.app import Settings, create_app

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """(client, settings): the fixture's model with a store and an admin token."""
    settings = Settings(run_dir=trained_run, max_concurrent=4, store=tmp_path_factory.mktemp("store"),
                        admin_token=TOKEN, swap_check_s=0.05, corrections_per_client=1000)
    with TestClient(create_app(settings)) as client:
        yield client, settings


@pytest.fixture
def client(server):
    return server[0]


def send(client, data: bytes, label: str, kind: str = "digit", **headers):
    return client.post("/api/corrections", files={"file": ("d.png", data, "image/png")},
                       data={"label": label, "kind": kind}, headers=headers)


def stored(settings, ident: int) -> tuple:
    with sqlite3.connect(settings.corrections_db) as db:
        return db.execute("SELECT image, answer, confidence, label, model_run, model_sha256, created "
                          "FROM corrections WHERE id = ?", (ident,)).fetchone()


def test_a_correction_keeps_the_image_what_the_model_saw_and_said(server, mnist):
    client, settings = server
    data = png(on_paper(mnist.x_test[0]))  # a 7
    answer = client.post("/api/predict", files={"file": ("d.png", data, "image/png")}).json()
    r = send(client, data, "1")
    assert r.status_code == 201, r.text
    kept = r.json()
    assert kept["answer"] == answer["text"] and kept["label"] == "1" and not kept["right"]
    assert kept["labelled_digits"] == 1 and kept["model"] == client.get("/api/model").json()["run"]
    image, said, confidence, label, run, sha, created = stored(settings, kept["id"])
    picture = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)  # the ink, re-encoded
    assert image != data and picture.ndim == 2 and max(picture.shape) <= 256
    assert said == answer["text"] and label == "1"
    assert confidence == pytest.approx(answer["probability"]) and created == kept["created"]
    assert sha == client.get("/api/model").json()["weights_sha256"] and len(sha) == 64
    data28 = store.labelled(settings.corrections_db)
    seen = cv2.imdecode(np.frombuffer(base64.b64decode(answer["preprocessed"]), np.uint8),
                        cv2.IMREAD_UNCHANGED)
    assert np.array_equal(data28.x[data28.ids == kept["id"]][0], seen)


def test_right_answers_json_bodies_and_numbers(client, mnist):
    data = png(on_paper(mnist.x_test[1]))
    said = client.post("/api/predict", files={"file": ("d.png", data, "image/png")}).json()["digit"]
    r = client.post("/api/corrections", json={"image": base64.b64encode(data).decode(), "label": str(said)})
    assert r.status_code == 201 and r.json()["right"] and r.json()["kind"] == "digit"
    number = png(number_on_paper([mnist.x_test[i] for i in (0, 1, 2)]))
    r = send(client, number, "7 2 1", kind="number")
    assert r.status_code == 201 and r.json()["label"] == "721" and r.json()["labelled_digits"] == 3
    r = send(client, number, "72", kind="number")  # the person saw two digits: no digit label
    assert r.status_code == 201 and r.json()["labelled_digits"] == 0


@pytest.mark.parametrize(("label", "kind", "status", "words"), [
    ("x", "digit", 422, "not a digit's answer"),
    ("12", "digit", 422, '"0" to "9"'),
    ("7a", "number", 422, "only digits"),
    ("7", "letter", 422, "kind"),
    ("", "digit", 422, "label"),
])
def test_bad_labels_are_refused_in_one_line_and_nothing_is_kept(server, mnist, label, kind, status, words):
    client, settings = server
    before = store.count(settings.corrections_db)
    r = send(client, png(on_paper(mnist.x_test[0])), label, kind)
    assert r.status_code == status and words in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert store.count(settings.corrections_db) == before


def test_bad_images_are_refused_as_for_prediction(server, mnist):
    client, settings = server
    before = store.count(settings.corrections_db)
    good = png(on_paper(mnist.x_test[0]))
    for data, status in ((b"just text", 415), (good[: len(good) // 2], 422),
                         (png(np.full((200, 200), 255, np.uint8)), 422)):
        assert send(client, data, "7").status_code == status
    r = client.post("/api/corrections", content=b"\0" * (5 * 1024 * 1024 + 1),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/api/corrections", files={"other": ("d.png", good, "image/png")}, data={"label": "7"})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    assert store.count(settings.corrections_db) == before


def test_without_a_store_the_server_collects_nothing_and_says_so(trained_run, mnist):
    with TestClient(create_app(Settings(run_dir=trained_run))) as plain:
        assert plain.get("/api/corrections/status").json() == {"collecting": False}
        r = send(plain, png(on_paper(mnist.x_test[0])), "7")
        assert r.status_code == 404 and "--store" in r.json()["detail"]
        r = plain.get("/api/corrections/export", headers=ADMIN)  # and no admin routes at all
        assert r.status_code == 404 and "DIGITNET_ADMIN_TOKEN" in r.json()["detail"]


def test_admin_routes_need_the_token(client):
    assert client.get("/api/corrections/status").json() == {"collecting": True}
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        for method, url in (("GET", "/api/corrections/export"), ("DELETE", "/api/corrections/1"),
                            ("POST", "/api/swap")):
            r = client.request(method, url, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, url)


def test_export_over_http_is_a_zip_of_the_idx_files_or_pngs(server, mnist):
    client, settings = server
    ident = send(client, png(on_paper(mnist.x_test[2])), "not a digit").json()["id"]
    pending = zipfile.ZipFile(io.BytesIO(client.get("/api/corrections/export?format=png",
                                                    headers=ADMIN).content)).namelist()
    assert not any(name.startswith("not-a-digit/") for name in pending)  # accepted ones only
    store.review(settings.corrections_db, "accepted", [ident])
    r = client.get("/api/corrections/export", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert sorted(names) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                             "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    pngs = zipfile.ZipFile(io.BytesIO(client.get("/api/corrections/export?format=png",
                                                 headers=ADMIN).content)).namelist()
    assert any(name.startswith("not-a-digit/") for name in pngs)
    r = client.get("/api/corrections/export?format=gif", headers=ADMIN)
    assert r.status_code == 422 and "idx, png" in r.json()["detail"]


def test_delete_over_http(server, mnist):
    client, settings = server
    ident = send(client, png(on_paper(mnist.x_test[3])), "0").json()["id"]
    assert client.delete(f"/api/corrections/{ident}", headers=ADMIN).status_code == 204
    r = client.delete(f"/api/corrections/{ident}", headers=ADMIN)
    assert r.status_code == 404 and "digitnet corrections list" in r.json()["detail"]
    assert client.delete("/api/corrections/export", headers=ADMIN).status_code == 405  # not an id
    assert stored(settings, ident) is None


def test_a_database_the_server_cannot_use_is_503(trained_run, tmp_path, mnist):
    with TestClient(create_app(Settings(run_dir=trained_run, store=tmp_path))) as client:
        (tmp_path / store.FILE_NAME).write_bytes(b"overwritten by something else" * 100)
        for suffix in ("-wal", "-shm"):
            (tmp_path / (store.FILE_NAME + suffix)).unlink(missing_ok=True)
        r = send(client, png(on_paper(mnist.x_test[0])), "7")
        assert r.status_code == 503 and "cannot be used now" in r.json()["detail"]


def test_the_model_is_swapped_without_failing_a_request(server, trained_run, tmp_path, mnist):
    """POST /api/swap and a watched served.json each change the model while 8 clients predict."""
    client, settings = server
    other = tmp_path / "other-run"
    shutil.copytree(trained_run, other)
    images = [png(on_paper(mnist.x_test[i])) for i in range(4)]

    def predict(i: int) -> int:
        return client.post("/api/predict", files={"file": ("d.png", images[i % 4], "image/png")}).status_code

    with ThreadPoolExecutor(8) as pool:
        busy = pool.map(predict, range(24))
        r = client.post("/api/swap", json={"run": str(other)}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["run"] == "other-run"
        assert served.read(settings.store) == other.resolve()  # the other processes follow
        served.write(settings.store, trained_run)  # as digitnet finetune --swap does
        deadline = time.monotonic() + 10
        while client.get("/api/model").json()["run"] != trained_run.name:
            assert time.monotonic() < deadline, "served.json was not picked up"
            time.sleep(0.05)
        assert set(busy) == {200}
    r = client.post("/api/swap", json={"run": str(tmp_path / "nothing")}, headers=ADMIN)
    assert r.status_code == 422 and "no such run directory" in r.json()["detail"]
    assert client.get("/api/model").json()["run"] == trained_run.name
