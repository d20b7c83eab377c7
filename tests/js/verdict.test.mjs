// How the pages put a probability in words: never "100%" (no model is certain), never "0%".
import assert from "node:assert/strict";
import { test } from "node:test";

import { percent } from "../../src/digitnet/web/static/reader/verdict.js";

test("a probability near certainty is never shown as 100%", () => {
  for (const p of [0.995, 0.9968, 0.9989, 0.99899]) {
    assert.notEqual(percent(p), "100%");
    assert.match(percent(p), /^99\.\d%$/);
  }
  assert.equal(percent(0.9991), "over 99.9%");
  assert.equal(percent(1), "over 99.9%");
});

test("small and middling probabilities", () => {
  assert.equal(percent(0.0004), "under 0.1%");
  assert.equal(percent(0), "0.0%");
  assert.equal(percent(0.053), "5.3%");
  assert.equal(percent(0.874), "87%");
});
