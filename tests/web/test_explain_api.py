"""/api/explain: what the network sees in the digit /api/predict answered, for the same bytes,
bounded and refused exactly as /api/predict is."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from web_helpers import on_paper, png

from digitnet.inference import bundled
from digitnet.inference.explain import explain_with
from digitnet.vision import imaging
from digitnet.web.app import Settings, create_app


@pytest.fixture(scope="module")
def unsure_reader(tmp_path_factory):
    """The bundled reader with a "close" threshold of 0: every digit is "a or b?"."""
    path = tmp_path_factory.mktemp("unsure") / "reader"
    shutil.copytree(bundled.reader_dir(), path)
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["calibration"]["close"] = 0.0
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture(scope="module")
def clients(unsure_reader):
    with TestClient(create_app(Settings(run_dir=bundled.reader_dir(), max_concurrent=2))) as sure, \
            TestClient(create_app(Settings(run_dir=unsure_reader, max_concurrent=2))) as unsure:
        yield sure, unsure


def upload(data: bytes) -> dict:
    return {"files": {"file": ("digit.png", data, "image/png")}}


def restored(block: dict) -> np.ndarray:
    return np.array(block["values"]) * block["scale"] / 255


def test_the_explanation_is_of_the_answer_predict_gives(clients, mnist):
    client = clients[0]
    data = png(on_paper(mnist.x_test[0]))  # a 7
    answer = client.post("/api/predict", **upload(data)).json()
    r = client.post("/api/explain", **upload(data))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["answer"] == {k: answer[k] for k in ("verdict", "text", "digit", "runner_up", "probability")}
    assert got["probabilities"] == pytest.approx(answer["probabilities"], abs=1e-6)
    seen = imaging.digit_from_bytes(data, "digit.png").image28
    assert np.array_equal(np.array(got["image"]), seen)
    assert got["method"] == {"name": "occlusion", "score": "log-odds", "window": 4, "stride": 2}
    assert [s["class"] for s in got["saliency"]] == [7]

    # the numbers are explain's, on the served predictor (its checked model.onnx)
    served = client.app.state.served.model.predictor
    assert served.backend == "onnx"
    expected = explain_with(served, seen)
    np.testing.assert_allclose(restored(got["saliency"][0]), expected.saliency[0].values,
                               atol=got["saliency"][0]["scale"] / 255)
    fm = got["feature_maps"]
    assert (fm["layer"], fm["kinds"], fm["channels"]) == ("features.0.0 → features.0.2",
                                                          ["Conv2d", "BatchNorm2d", "ReLU"], 24)
    assert fm["shape"] == [16, 28, 28]
    np.testing.assert_allclose(restored(fm), expected.feature_maps.values[:16], atol=fm["scale"] / 255)
    assert len(r.content) < 40_000


def test_an_unsure_answer_explains_the_runner_up_too(clients, mnist):
    client = clients[1]
    data = png(on_paper(mnist.x_test[0]))
    answer = client.post("/api/predict", **upload(data)).json()
    assert answer["verdict"] == "unsure"
    b64 = base64.b64encode(data).decode()
    got = client.post("/api/explain", json={"image": b64}).json()  # the JSON form too
    assert [s["class"] for s in got["saliency"]] == [answer["digit"], answer["runner_up"]]
    assert got["saliency"][1]["probability"] == pytest.approx(answer["probabilities"][answer["runner_up"]],
                                                              abs=1e-6)
    assert not np.array_equal(restored(got["saliency"][0]), restored(got["saliency"][1]))


def test_bad_requests_are_refused_as_predict_refuses_them(clients, mnist):
    client = clients[0]
    good = png(on_paper(mnist.x_test[0]))
    cases = [
        {"content": b"\0" * (5 * 1024 * 1024 + 1), "headers": {"content-type": "application/json"}},
        upload(b"just some text, not a picture"),
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        upload(good[: len(good) // 2]),
        upload(png(np.full((200, 200), 255, np.uint8))),
        upload(png(np.full((5000, 8001), 255, np.uint8))),
        {"json": {"image": "not base64 at all!"}},
        {"data": {"other": "field"}, "files": {"other": ("a.png", b"x", "image/png")}},
    ]
    statuses = []
    for kwargs in cases:
        explained, predicted = client.post("/api/explain", **kwargs), client.post("/api/predict", **kwargs)
        assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())
        assert "\n" not in explained.json()["detail"]
        statuses.append(explained.status_code)
    assert statuses == [413, 415, 415, 422, 422, 422, 422, 422]


def test_the_api_documents_it(clients):
    spec = clients[0].get("/openapi.json").json()
    route = spec["paths"]["/api/explain"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(route["requestBody"]["content"])
    assert {"200", "413", "415", "422"} <= set(route["responses"])
