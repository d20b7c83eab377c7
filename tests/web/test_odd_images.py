"""Odd and hostile images through the HTTP API: each gets an answer or a one-line 4xx, at once."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from web_helpers import png, uniform_app

from digitnet.vision import imaging


@pytest.fixture(scope="module")
def client():
    with TestClient(uniform_app(max_concurrent=2)) as c:
        yield c


def checkerboard(h: int, w: int) -> np.ndarray:
    return ((np.indices((h, w)).sum(axis=0) % 2) * 255).astype(np.uint8)


def post(client, route: str, image: np.ndarray):
    return client.post(route, files={"file": ("odd.png", png(image), "image/png")})


@pytest.mark.parametrize("image", [
    checkerboard(2, 2),
    checkerboard(1, 3000),
    np.tile(np.r_[np.zeros(20), np.full(20, 255)].astype(np.uint8), (2, 1)),
    np.zeros((1, 1), np.uint8),
], ids=["checker-2x2", "line-1x3000", "bar-2x40", "pixel-1x1"])
@pytest.mark.parametrize("route", ["/api/read", "/api/predict"])
def test_tiny_odd_images_get_an_answer_or_a_422(client, route, image):
    r = post(client, route, image)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert "\n" not in r.json()["detail"]


@pytest.mark.parametrize("shape", [(3, 4000), (4000, 3), (2, 5000)])
def test_long_thin_images_are_refused_at_once(client, shape):
    image = (np.random.default_rng(0).integers(0, 2, shape) * 255).astype(np.uint8)
    start = time.perf_counter()
    r = post(client, "/api/read", image)
    assert r.status_code == 422, r.text
    assert "crop it" in r.json()["detail"]
    assert time.perf_counter() - start < 1.0


def test_a_solid_bar_within_the_aspect_limit_is_refused_as_too_long_for_a_number(client):
    bar = np.full((60, 3000), 255, np.uint8)  # image aspect 50; the ink is 75 heights long
    bar[10:50, 10:2990] = 0
    r = post(client, "/api/read", bar)
    assert r.status_code == 422 and "too long for one number" in r.json()["detail"]


def test_opencv_failures_in_preprocessing_are_a_422_not_a_500(client, monkeypatch):
    def fails(_image):
        raise cv2.error("unsupported layout")

    monkeypatch.setattr(imaging, "ink_mask", fails)
    for route in ("/api/predict", "/api/read"):
        r = post(client, route, checkerboard(40, 40))
        assert r.status_code == 422, r.text
        assert "cannot process this image" in r.json()["detail"]


@pytest.mark.parametrize("body, content_type", [
    (b"".join(b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%d.png\"\r\n\r\nx\r\n" % i
              for i in range(2)) + b"--b--\r\n", "multipart/form-data; boundary=b"),  # two files
    (b"anything", "multipart/form-data"),  # no boundary at all
    (b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n" % i for i in range(20))
     + b"--b--\r\n", "multipart/form-data; boundary=b"),  # more fields than allowed
], ids=["two-files", "no-boundary", "too-many-fields"])
def test_malformed_multipart_is_the_documented_422(client, body, content_type):
    r = client.post("/api/predict", content=body, headers={"content-type": content_type})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("malformed multipart body")
    documented = client.get("/openapi.json").json()["paths"]["/api/predict"]["post"]["responses"]
    assert "malformed multipart" in documented["422"]["description"]


def test_docs_pages_load_their_assets_from_this_server(client):
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", html.text)
        assert assets, html.text
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            assert client.get(url).status_code == 200, url
