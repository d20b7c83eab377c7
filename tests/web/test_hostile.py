"""What an outside client can do to a plain ``digitnet serve``, one test per way of trying:
each gets a bounded answer (a 4xx with one line, a refusal that leaves things as they were),
never a store that fills, a stall, a dead watcher or a server path."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import sqlite3
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from web_helpers import on_paper, png, uniform_app

from digitnet.corrections import pictures, store
from digitnet.errors import DigitnetError
from digitnet.inference import served
from digitnet.runs import line_reading as lines
from digitnet.runs.run import Run
from digitnet.vision import imaging, numbers
from digitnet.web import browser_runtime, guard, site
from digitnet.web.app import Settings, create_app

TOKEN = "hostile-test-admin-token-0123"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
EVIL = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
SERVER_PATH = re.compile(r"(^|[\s'\"(])/(tmp|root|home|usr|opt|var|work)\b")


def seven(side: int = 120) -> np.ndarray:
    """A 7 written with a pen across most of a ``side`` px square of paper."""
    paper = np.full((side, side), 235, np.uint8)
    points = (np.array([[0.3, 0.2], [0.7, 0.2], [0.45, 0.85]]) * side).astype(np.int32)
    cv2.polylines(paper, [points], False, 20, max(2, side // 20), cv2.LINE_AA)
    return paper


def send(client, data: bytes, label: str = "7", **headers):
    return client.post("/api/corrections", files={"file": ("d.png", data, "image/png")},
                       data={"label": label}, headers=headers)


@pytest.fixture
def app_with_store(tmp_path):
    def make(**settings):
        return uniform_app(store=tmp_path / "store", admin_token=TOKEN, **settings)
    return make


# --- row 1: a 4.8 MB padded "correction", three times --------------------------------------


def test_a_padded_correction_keeps_only_a_small_png_of_its_pixels(app_with_store, tmp_path):
    padded = png(seven()) + b"\0" * (4_800_000)  # zeros after the PNG's end chunk
    with TestClient(app_with_store()) as client:
        ids = [send(client, padded).json()["id"] for _ in range(3)]
    db = store.path_in(tmp_path / "store")
    with sqlite3.connect(db) as raw:
        images = [raw.execute("SELECT image FROM corrections WHERE id = ?", (i,)).fetchone()[0] for i in ids]
    for image in images:
        assert image.startswith(b"\x89PNG") and image.endswith(b"IEND\xaeB`\x82")  # nothing after it
        assert len(image) < 20_000 and b"\0" * 1000 not in image
        kept = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)
        assert kept.ndim == 2 and max(kept.shape) <= pictures.MAX_SIDE
    assert db.stat().st_size < 1_000_000  # was 14.4 MB


def test_one_client_is_rate_limited_with_429_and_when_to_come_back(app_with_store):
    with TestClient(app_with_store(corrections_per_client=3)) as client:
        assert [send(client, png(seven())).status_code for _ in range(3)] == [201] * 3
        r = send(client, png(seven()))
    assert r.status_code == 429 and "\n" not in r.json()["detail"]
    assert "try again in" in r.json()["detail"] and 1 <= int(r.headers["retry-after"]) <= 601


def test_a_full_store_refuses_with_507_and_says_what_to_do(app_with_store, tmp_path):
    with TestClient(app_with_store()) as client:
        assert send(client, png(seven())).status_code == 201
    db = store.path_in(tmp_path / "store")
    with TestClient(app_with_store(max_store_bytes=db.stat().st_size)) as client:
        r = send(client, png(seven()))
    assert r.status_code == 507 and "admin reviews, exports or deletes" in r.json()["detail"]
    assert store.count(db) == 1


# --- row 2: another site's page posts corrections ------------------------------------------


def test_cross_site_writes_are_refused_and_the_page_own_and_allowed_origins_pass(app_with_store, tmp_path):
    site_origin = "https://digits.example.org"
    with TestClient(app_with_store(allowed_origins=(site_origin,))) as client:
        for headers in (EVIL, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}):
            r = send(client, png(seven()), **headers)
            assert r.status_code == 403 and "cross-site" in r.json()["detail"], headers
            admin = {**ADMIN, **headers}
            assert client.delete("/api/corrections/1", headers=admin).status_code == 403
            assert client.post("/api/swap", json={"run": "x"}, headers=admin).status_code == 403
        assert store.count(store.path_in(tmp_path / "store")) == 0
        for headers in ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},  # the page
                        {"Origin": site_origin, "Sec-Fetch-Site": "cross-site"},  # the static site
                        {}):  # no browser: curl, a script
            assert send(client, png(seven()), **headers).status_code == 201, headers
        r = client.options("/api/corrections", headers={"Origin": site_origin,
                                                         "Access-Control-Request-Method": "POST"})
        assert r.headers["access-control-allow-origin"] == site_origin


def test_rows_carry_a_salted_client_id_that_deletes_one_source(app_with_store, tmp_path, cli):
    with TestClient(app_with_store()) as client:
        ident = send(client, png(seven())).json()["id"]
    db = store.path_in(tmp_path / "store")
    other = store.add(db, store.Correction("digit", png(seven()), "7", 0.5, "7", "run", "",
                                           (store.Seen(np.zeros((28, 28), np.uint8), 7, 0.5, 7),),
                                           client=store.client_id(db, "203.0.113.9")))
    rows = {r.id: r for r in store.summaries(db)}
    mine = rows[ident].client
    assert mine == store.client_id(db, "testclient") and len(mine) == 16 and "testclient" not in mine
    assert rows[other].client != mine and all(r.status == "pending" for r in rows.values())
    code, out, _ = cli("corrections", "delete", "--db", db, "--client", mine)
    assert code == 0 and "deleted 1 corrections" in out
    assert [r.id for r in store.summaries(db)] == [other]


# --- row 3: 200 idle connections, and clients that send slowly ------------------------------


@pytest.fixture
def guarded_server():
    """uvicorn with the guard (short deadlines, so the test is quick) on a free port."""
    import threading

    import uvicorn

    app = uniform_app()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=2000, timeout_keep_alive=5,
                            http=guard.protocol(header_s=1.0, body_s=1.0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def ask(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b'"}' in data or b"ok" in data:
                break
        return data


def test_idle_connections_do_not_shut_others_out_and_are_closed(guarded_server):
    port = guarded_server
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    try:
        started = time.monotonic()
        answer = ask(port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200") and time.monotonic() - started < 1.0
        time.sleep(1.5)  # past the header deadline: each idle connection was closed by the server
        for s in idle[:20]:
            s.settimeout(2)
            assert s.recv(10) == b""
    finally:
        for s in idle:
            s.close()


def test_headers_or_a_body_sent_a_byte_at_a_time_meet_a_deadline(guarded_server):
    port = guarded_server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        started = time.monotonic()
        assert s.recv(100) == b"" and time.monotonic() - started < 3
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"image\": \"")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within" in answer


# --- row 4: a 6320x6320 image to /api/read ---------------------------------------------------


def test_a_number_at_the_pixel_limit_is_read_on_a_small_copy(monkeypatch, mnist):
    """The 6320x6320 image of one large 7 (MNIST's first test digit, 5000 px tall) is read on a
    copy at most READ_SIDE px a side, and its boxes are given in the image's own pixels."""
    big = on_paper(mnist.x_test[0], size=5000, canvas=(6320, 6320), at=(700, 600))
    data = png(big)
    sizes = []
    real = imaging.find_ink

    def find_ink(gray, dark, side):
        found = real(gray, dark, side)
        sizes.append(found.ink.shape)
        return found

    monkeypatch.setattr(imaging, "find_ink", find_ink)
    with TestClient(uniform_app()) as client:
        r = client.post("/api/read", files={"file": ("big.png", data, "image/png")})
    assert r.status_code == 200, r.text
    # decoded, then shrunk to READ_SIDE before its ink is found
    assert sizes == [(numbers.READ_SIDE, numbers.READ_SIDE)] and r.json()["text"] == "7"
    x, y, w, h = r.json()["digits"][0]["box"]
    ink = np.argwhere(big < 128)  # (y, x) of the dark pixels
    assert abs(y - ink[:, 0].min()) < 40 and abs(x + w - ink[:, 1].max()) < 40 and h > 2500


# --- row 5: a run that does not load, then a good one ----------------------------------------


def test_a_run_that_does_not_load_never_stops_serving(trained_run, tmp_path):
    bad = tmp_path / "bad-run"
    shutil.copytree(trained_run, bad)
    (bad / "metrics.json").write_text(json.dumps({"calibration": {"temperature": 1.0}}))  # no "reject"
    good = tmp_path / "good-run"
    shutil.copytree(trained_run, good)
    settings = Settings(run_dir=trained_run, store=tmp_path / "store", admin_token=TOKEN,
                        swap_check_s=0.05)
    # two server processes of one store, as --workers 2 starts them
    with TestClient(create_app(settings)) as client, TestClient(create_app(settings)) as other:
        r = client.post("/api/swap", json={"run": str(bad)}, headers=ADMIN)
        detail = r.json()["detail"]
        assert r.status_code == 422 and "bad-run does not load" in detail and not SERVER_PATH.search(detail)
        assert client.get("/api/model").json()["run"] == trained_run.name
        served.write(settings.store, bad)  # the watcher meets it: logs it, keeps serving, goes on
        time.sleep(0.5)
        assert client.get("/api/model").json()["run"] == trained_run.name
        assert client.get("/api/health").status_code == 200
        served.write(settings.store, good)
        deadline = time.monotonic() + 10
        while {c.get("/api/model").json()["run"] for c in (client, other)} != {"good-run"}:
            assert time.monotonic() < deadline, "the watchers did not swap the good run in"
            time.sleep(0.05)


# --- row 6: a phone photo with GPS in its EXIF -----------------------------------------------


def test_a_photo_with_gps_in_its_exif_is_kept_as_pixels_only(app_with_store, tmp_path):
    photo = Image.fromarray(seven(600)).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPS
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    assert b"PhoneMaker" in data
    with TestClient(app_with_store()) as client:
        ident = client.post("/api/corrections", files={"file": ("p.jpg", data, "image/jpeg")},
                            data={"label": "7"}).json()["id"]
    with sqlite3.connect(store.path_in(tmp_path / "store")) as raw:
        kept = raw.execute("SELECT image FROM corrections WHERE id = ?", (ident,)).fetchone()[0]
    assert kept.startswith(b"\x89PNG") and b"PhoneMaker" not in kept and b"Exif" not in kept
    assert not Image.open(io.BytesIO(kept)).getexif()


# --- row 7: the browser runtime's folder and its content -------------------------------------


def test_a_foreign_runtime_folder_is_never_emptied(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    monkeypatch.setenv(browser_runtime.ENV, str(folder))
    with pytest.raises(DigitnetError, match="holds other files"):
        browser_runtime.ensure()
    assert (folder / "notes.txt").read_text() == "keep me"


def test_a_cached_runtime_of_the_right_size_but_other_content_is_not_used(tmp_path, monkeypatch):
    for name, (size, _) in browser_runtime.FILES.items():
        (tmp_path / name).write_bytes(b"x" * size)
    monkeypatch.setenv(browser_runtime.ENV, str(tmp_path))
    assert browser_runtime.cached() is None
    assert site.on_device(Run.open(site.bundled.READER_DIR)).info is None


# --- row 8: an empty admin token -------------------------------------------------------------


def test_an_empty_admin_token_is_refused_at_start(tmp_path):
    for token in ("", "   "):
        with pytest.raises(DigitnetError, match="empty"):
            Settings(run_dir=tmp_path, admin_token=token)
    with pytest.raises(DigitnetError, match="empty"):
        Settings.from_json(json.dumps({"run_dir": str(tmp_path), "admin_token": ""}))


# --- row 9: no server path reaches a client --------------------------------------------------


def test_no_server_path_reaches_a_client(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv(browser_runtime.ENV, str(tmp_path / "no-runtime"))
    line_reader = tmp_path / "lines"
    line_reader.mkdir()
    shutil.copy(lines.BUNDLED, line_reader)
    settings = Settings(run_dir=trained_run, store=tmp_path / "store", line_reader=line_reader)
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/api/model"), client.get("/ondevice/model.json"), client.get("/")]
        db = store.path_in(settings.store)
        db.write_bytes(b"overwritten by something else" * 100)
        for suffix in ("-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        answers.append(send(client, png(on_paper(np.zeros((28, 28), np.uint8) + 255))))
    for r in answers:
        assert not SERVER_PATH.search(r.text), r.text
    assert answers[1].status_code == 404 and answers[1].json()["detail"] == site.NO_RUNTIME
    assert answers[3].status_code == 503 and "try again later" in answers[3].json()["detail"]


def test_the_bundled_reader_offers_reading_on_the_device_when_its_onnx_checks_out(monkeypatch):
    """The package's reader: on the device when a checked model.onnx ships beside it, else one
    plain sentence saying it cannot."""
    found = site.on_device(Run.open(site.bundled.READER_DIR))
    onnx = site.bundled.READER_DIR / "model.onnx"
    if onnx.is_file() and browser_runtime.cached() is not None:
        assert found.info is not None and found.files["model.onnx"] == onnx
    else:
        assert found.info is None and found.reason in (site.NO_RUNTIME, site.NO_EXPORT)
        assert not SERVER_PATH.search(found.reason) and found.reason.count(".") == 1


# --- and a huge id to delete ----------------------------------------------------------------


def test_deleting_a_huge_id_is_404(app_with_store):
    with TestClient(app_with_store()) as client:
        for ident in (2**63, 10**30, 2**63 - 1):
            r = client.delete(f"/api/corrections/{ident}", headers=ADMIN)
            assert r.status_code == 404 and "no correction" in r.json()["detail"]
