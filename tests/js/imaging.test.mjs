// The page's preprocessing (reader/imaging.js) against Python's (digitnet.vision.imaging), byte
// for byte, on the golden fixtures scripts/preprocess_fixtures.py writes (make test-js does both):
// every picture must give the same 28x28 digit, or the same kind of refusal, and every whole
// number the same white ink and mask on its copy (the steps a number shares with a digit).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { crc32, gunzipSync } from "node:zlib";

import { findInk, isDarkOnLight, PREPROCESS_VERSION, toGray, toMnist } from "../../src/digitnet/web/static/reader/imaging.js";

const FIXTURES = process.env.DIGITNET_FIXTURES || new URL("../../build/fixtures/preprocess.bin.gz", import.meta.url);

function load() {
  let raw;
  try {
    raw = gunzipSync(readFileSync(FIXTURES));
  } catch (e) {
    throw new Error(`cannot read the fixtures (${e.message}); write them with 'make test-js' ` +
      "or 'python scripts/preprocess_fixtures.py'");
  }
  const size = raw.readUInt32LE(0);
  const header = JSON.parse(raw.subarray(4, 4 + size).toString("utf8"));
  return { header, data: raw.subarray(4 + size) };
}

// The picture as the browser hands it over: RGBA bytes.
function rgbaOf(fixture, data) {
  const n = fixture.w * fixture.h;
  const pixels = data.subarray(fixture.pixels, fixture.pixels + n * fixture.channels);
  if (fixture.channels === 4) return pixels;
  const rgba = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) {
    rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = pixels[i];
    rgba[4 * i + 3] = 255;
  }
  return rgba;
}

function read(fixture, data) {
  try {
    return toMnist(rgbaOf(fixture, data), fixture.w, fixture.h, fixture.dark);
  } catch (e) {
    if (e.kind === undefined) throw e;
    return e.kind;
  }
}

// Where two digits differ: how many pixels, and by how much at most.
function difference(a, b) {
  let pixels = 0, most = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) [pixels, most] = [pixels + 1, Math.max(most, Math.abs(a[i] - b[i]))];
  }
  return `${pixels} pixels differ, by up to ${most}`;
}

const { header, data } = load();

test("the fixtures were written by the algorithm this file implements", () => {
  assert.equal(header.version, PREPROCESS_VERSION);
  assert.ok(header.fixtures.length >= 300, `only ${header.fixtures.length} fixtures`);
  const kinds = new Set(header.fixtures.map((f) => f.kind));
  for (const kind of ["drawing", "photo", "number", "thin-faint", "page", "tiny", "light-on-dark", "blank"]) {
    assert.ok(kinds.has(kind), `no ${kind} fixtures`);
  }
});

for (const kind of new Set(header.fixtures.map((f) => f.kind))) {
  test(`every ${kind} gives Python's 28x28 bytes`, () => {
    const wrong = [];
    for (const fixture of header.fixtures.filter((f) => f.kind === kind)) {
      const got = read(fixture, data);
      if (fixture.error !== undefined) {
        if (got !== fixture.error) wrong.push(`${fixture.name}: expected the error ${fixture.error}, got ${typeof got === "string" ? got : "a digit"}`);
        continue;
      }
      const want = data.subarray(fixture.expected, fixture.expected + 784);
      if (typeof got === "string") wrong.push(`${fixture.name}: expected a digit, got the error ${got}`);
      else if (Buffer.compare(Buffer.from(got), Buffer.from(want)) !== 0) wrong.push(`${fixture.name}: ${difference(got, want)}`);
    }
    assert.deepEqual(wrong, []);
  });
}

// find_ink on a number's copy (imaging.NUMBER_SIDE, as the header says), summed up as the fixtures do: {w, h, crc32} of the ink, then the mask.
function numberInk(fixture, data) {
  const gray = toGray(rgbaOf(fixture, data), fixture.w, fixture.h);
  try {
    const { ink, mask } = findInk(gray, isDarkOnLight(gray), header.number_side);
    return { w: ink.w, h: ink.h, crc32: crc32(mask.data, crc32(ink.data)) };
  } catch (e) {
    if (e.kind === undefined) throw e;
    return { error: e.kind };
  }
}

test("every number's ink and mask, as the number reader finds them, are Python's", () => {
  const numbers = header.fixtures.filter((f) => f.number_ink !== undefined);
  assert.ok(numbers.length >= 30, `only ${numbers.length} numbers`);
  assert.ok(numbers.some((f) => f.number_ink.w > 0 && Math.max(f.w, f.h) > header.number_side), "no number larger than its copy");
  const wrong = numbers.filter((f) => JSON.stringify(numberInk(f, data)) !== JSON.stringify(f.number_ink));
  assert.deepEqual(wrong.map((f) => f.name), []);
});
