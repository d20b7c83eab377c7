// reader/explain.js, the occlusion the page computes on the device, against its definition:
// each pixel's value is the mean drop of the log-odds over the squares that cover it, the
// squares without ink are left out of the batch because their drop is 0, and the JSON is
// /api/explain's. Run with `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  explanation, logOdds, occlusionBatch, occlusionMaps, quantize, targetsOf, windows,
} from "../../src/digitnet/web/static/reader/explain.js";

const SIDE = 28;
const SIZE = SIDE * SIDE;

// A small "network" for the tests: softmax of linear logits, weights from a fixed LCG.
function toyModel(classes, seed = 7) {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const weights = Array.from({ length: classes }, () => Float64Array.from({ length: SIZE }, random));
  return (batch) => {
    const n = batch.length / SIZE;
    const out = new Float32Array(n * classes);
    for (let k = 0; k < n; k++) {
      const logits = weights.map((w) => w.reduce((sum, wi, i) => sum + wi * batch[k * SIZE + i], 0) * 4);
      const top = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - top));
      const total = e.reduce((a, b) => a + b);
      e.forEach((v, c) => { out[k * classes + c] = v / total; });
    }
    return out;
  };
}

// A stroke: a bar of ink 3 pixels wide, rows 6 to 21, with a top bar.
function aDigit() {
  const pixels = new Float32Array(SIZE);
  for (let r = 6; r < 22; r++) for (let c = 12; c < 15; c++) pixels[r * SIDE + c] = 0.9;
  for (let c = 8; c < 20; c++) pixels[6 * SIDE + c] = 0.8;
  return pixels;
}

test("the squares cover every pixel, 13 by 13 of them", () => {
  const corners = windows(4, 2, SIDE);
  assert.equal(corners.length, 169);
  assert.deepEqual([corners[0], corners[1], corners.at(-1)], [[0, 0], [0, 2], [24, 24]]);
  const covered = new Set();
  for (const [r, c] of corners) for (let i = r; i < r + 4; i++) for (let j = c; j < c + 4; j++) covered.add(i * SIDE + j);
  assert.equal(covered.size, SIZE);
});

test("the batch is the picture, a blank page, then a copy per square with ink, blanked", () => {
  const pixels = new Float32Array(SIZE);
  for (let r = 10; r < 14; r++) for (let c = 10; c < 12; c++) pixels[r * SIDE + c] = 1;
  const { inked, batch } = occlusionBatch(pixels, 4, 2);
  assert.deepEqual(inked, [[8, 8], [8, 10], [10, 8], [10, 10], [12, 8], [12, 10]]);
  assert.equal(batch.length, (2 + 6) * SIZE);
  assert.deepEqual(batch.subarray(0, SIZE), pixels);
  assert.ok(batch.subarray(SIZE, 2 * SIZE).every((v) => v === 0));
  const copy = batch.subarray(2 * SIZE, 3 * SIZE); // square (8, 8): rows 8-11, columns 8-11
  for (let i = 0; i < SIZE; i++) {
    const [r, c] = [Math.floor(i / SIDE), i % SIDE];
    assert.equal(copy[i], r >= 8 && r < 12 && c >= 8 && c < 12 ? 0 : pixels[i]);
  }
});

test("log-odds sum the other classes, so a sure answer keeps its precision", () => {
  assert.equal(logOdds([0.25, 0.5, 0.25], 1), 0);
  assert.ok(Math.abs(logOdds([0.25, 0.5, 0.25], 0) - Math.log(1 / 3)) < 1e-12);
  const sure = Float32Array.of(1 - 3e-7, 1e-7, 2e-7);
  const expected = Math.log(sure[0]) - Math.log(sure[1] + sure[2]);
  assert.ok(Math.abs(logOdds(sure, 0) - expected) < 1e-9);
  assert.ok(Number.isFinite(logOdds([1, 0], 0)) && Number.isFinite(logOdds([1, 0], 1)));
});

test("each pixel gets the mean drop over the squares that cover it", () => {
  const model = toyModel(3);
  const pixels = aDigit();
  const { inked, batch } = occlusionBatch(pixels, 4, 2);
  const [map] = occlusionMaps(model(batch), 3, inked, [2], 4, 2);
  const odds = (image) => logOdds(model(image), 2);
  const base = odds(pixels);
  const blanked = (r, c) => {
    const copy = Float32Array.from(pixels);
    for (let i = r; i < r + 4; i++) copy.fill(0, i * SIDE + c, i * SIDE + c + 4);
    return copy;
  };
  // every square covering the pixel, with or without ink: the definition, without the shortcut
  const byHand = (i, j) => {
    const covering = windows(4, 2, SIDE).filter(([r, c]) => r <= i && i < r + 4 && c <= j && j < c + 4);
    return covering.reduce((sum, [r, c]) => sum + base - odds(blanked(r, c)), 0) / covering.length;
  };
  for (const [i, j] of [[6, 12], [7, 13], [20, 14], [6, 8], [0, 0], [27, 27], [15, 20]]) {
    assert.ok(Math.abs(map.values[i * SIDE + j] - byHand(i, j)) < 1e-5 * (1 + Math.abs(byHand(i, j))), `${i}, ${j}`);
  }
  assert.ok(map.values.some((v) => v !== 0));
  assert.ok(Math.abs(map.total - (base - odds(new Float32Array(SIZE)))) < 1e-9);
});

test("the answer decides what is explained", () => {
  assert.deepEqual(targetsOf({ verdict: "digit", digit: 7, runner_up: null }), [7]);
  assert.deepEqual(targetsOf({ verdict: "unsure", digit: 4, runner_up: 9 }), [4, 9]);
  assert.deepEqual(targetsOf({ verdict: "not_a_digit", digit: 3, runner_up: null }), [10]);
});

test("quantize gives integers in [-255, 255] of a scale, rounding halves to even as numpy", () => {
  const q = quantize(Float32Array.of(255, 0.5, -1.5, 2.5, 0, -255), [2, 3]);
  assert.deepEqual(q, { shape: [2, 3], scale: 255, values: [[255, 0, -2], [2, 0, -255]] });
  const small = quantize(Float32Array.of(0.002, -0.001), [2]);
  assert.ok(Math.abs(small.scale - 0.002) < 1e-9);
  assert.deepEqual(small.values, [255, -128]);
  assert.deepEqual(quantize(new Float32Array(4), [2, 2]).values, [[0, 0], [0, 0]]);
});

test("the device's explanation has /api/explain's shape", () => {
  const classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "not a digit"];
  const model = toyModel(11, 3);
  const pixels = aDigit();
  const digit = Uint8Array.from(pixels, (v) => Math.round(v * 255));
  const { inked, batch } = occlusionBatch(Float32Array.from(digit, (v) => v / 255), 4, 2);
  const probabilities = Array.from(model(batch).subarray(0, 11));
  const answer = { verdict: "unsure", text: "7 or 1?", digit: 7, runner_up: 1, probability: probabilities[7], probabilities };
  const maps = { data: Float32Array.from({ length: 24 * SIZE }, (_, i) => (i % 97) / 10), dims: [1, 24, 28, 28] };
  const e = explanation({ answer, classes, digit, batchProbabilities: model(batch), inked, maps,
    layer: { layer: "features.0.0 → features.0.2", kinds: ["Conv2d", "BatchNorm2d", "ReLU"] },
    method: { window: 4, stride: 2, maps: 16 } });
  assert.deepEqual(Object.keys(e), ["answer", "classes", "probabilities", "image", "method", "feature_maps", "saliency"]);
  assert.deepEqual(e.method, { name: "occlusion", score: "log-odds", window: 4, stride: 2 });
  assert.equal(e.image.length, 28);
  assert.deepEqual(e.image[6].slice(8, 12), [204, 204, 204, 204]);
  assert.deepEqual(e.saliency.map((s) => [s.class, s.name]), [[7, "7"], [1, "1"]]);
  assert.deepEqual(e.saliency[0].shape, [28, 28]);
  assert.deepEqual([e.feature_maps.channels, e.feature_maps.shape], [24, [16, 28, 28]]);
  assert.equal(Math.max(...e.feature_maps.values.flat(2)), 255);
  assert.equal(explanation({ answer, classes, digit, batchProbabilities: model(batch), inked, maps: null,
    layer: null, method: { window: 4, stride: 2, maps: 16 } }).feature_maps, null);
});
