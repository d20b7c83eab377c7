// What the network sees, computed in the browser as digitnet.inference.explain computes it on the
// server: occlusion on a class's log-odds (each window x window square of the 28x28 picture, in
// steps of `stride` pixels, blanked in turn; a pixel's value is the mean drop of the log-odds
// over the squares that cover it), and the small integer arrays of Explanation.to_dict. No
// page or runtime here: the model's probabilities come in, so `node --test` checks the math.

export const TINY = 1e-30; // probabilities below this count as this: a log-odds stays finite

// The top-left corners [row, column] of the squares, row by row (explain.windows).
export function windows(window, stride, side) {
  const corners = [];
  for (let r = 0; r + window <= side; r += stride) {
    for (let c = 0; c + window <= side; c += stride) corners.push([r, c]);
  }
  return corners;
}

function anyInk(pixels, side, r, c, window) {
  for (let i = r; i < r + window; i++) {
    for (let j = c; j < c + window; j++) if (pixels[i * side + j] !== 0) return true;
  }
  return false;
}

// pixels: Float32Array(side * side) in [0, 1] -> {inked: the corners of the squares with ink,
// batch: Float32Array((2 + inked) * side * side)}: the picture, a blank page, then one copy per
// square with ink, the square blanked. Squares without ink are not run: blanking them changes
// nothing, so their drop is exactly 0.
export function occlusionBatch(pixels, window, stride, side = 28) {
  const size = side * side;
  const inked = windows(window, stride, side).filter(([r, c]) => anyInk(pixels, side, r, c, window));
  const batch = new Float32Array((2 + inked.length) * size);
  batch.set(pixels, 0);
  inked.forEach(([r, c], k) => {
    const at = (2 + k) * size;
    batch.set(pixels, at);
    for (let i = r; i < r + window; i++) batch.fill(0, at + i * side + c, at + i * side + c + window);
  });
  return { inked, batch };
}

// One row of probabilities -> log p[target] - log(the others summed), in float64: for a sure
// answer 1 - p is lost to float32 rounding, the small probabilities themselves are not.
export function logOdds(row, target) {
  let rest = 0;
  for (let k = 0; k < row.length; k++) if (k !== target) rest += row[k];
  return Math.log(Math.max(row[target], TINY)) - Math.log(Math.max(rest, TINY));
}

// probabilities: the batch's, row by row ((2 + inked) * classes) -> for each target
// {values: Float32Array(side * side), total}: the mean drop per pixel, and the log-odds of the
// picture minus a blank page's (explain.occlusion).
export function occlusionMaps(probabilities, classes, inked, targets, window, stride, side = 28) {
  const row = (k) => probabilities.subarray(k * classes, (k + 1) * classes);
  const covered = new Float64Array(side * side);
  for (const [r, c] of windows(window, stride, side)) {
    for (let i = r; i < r + window; i++) for (let j = c; j < c + window; j++) covered[i * side + j]++;
  }
  return targets.map((target) => {
    const image = logOdds(row(0), target);
    const sums = new Float64Array(side * side);
    inked.forEach(([r, c], k) => {
      const drop = image - logOdds(row(2 + k), target);
      for (let i = r; i < r + window; i++) for (let j = c; j < c + window; j++) sums[i * side + j] += drop;
    });
    return { values: Float32Array.from(sums, (s, i) => s / covered[i]), total: image - logOdds(row(1), target) };
  });
}

// What to explain: the class the answer names first, then the runner-up when unsure.
export function targetsOf(answer, notADigit = 10) {
  const first = answer.verdict === "not_a_digit" ? notADigit : answer.digit;
  return answer.verdict === "unsure" ? [first, answer.runner_up] : [first];
}

// numpy's round: halves to the even neighbour.
function roundEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Float32 values (flat, row by row) of `shape` -> {shape, scale, values}: integers in
// [-255, 255] nested as the shape, value = integer * scale / 255 (explain.quantize, in its
// float32 steps).
export function quantize(values, shape) {
  let scale = 0;
  for (const v of values) scale = Math.max(scale, Math.abs(v));
  const factor = scale ? Math.fround(255 / scale) : 0;
  const ints = Array.from(values, (v) => roundEven(Math.fround(v * factor)) || 0);
  const nest = (flat, dims) => {
    if (dims.length === 1) return flat;
    const step = flat.length / dims[0];
    return Array.from({ length: dims[0] }, (_, k) => nest(flat.slice(k * step, (k + 1) * step), dims.slice(1)));
  };
  return { shape, scale, values: nest(ints, shape) };
}

// The JSON of /api/explain for one digit, from what the device computed: the answer read, the
// uint8 digit (side * side), the model's probabilities for occlusionBatch's batch and its
// `inked` squares, the first layer's output ({data, dims: [1, channels, height, width]}, or
// null), what model.json says of that layer (`layer`, `kinds`) and of the method (`window`,
// `stride`, `maps`: how many maps to keep).
export function explanation({ answer, classes, digit, batchProbabilities, inked, maps, layer, method, side = 28 }) {
  const { window, stride } = method;
  const targets = targetsOf(answer);
  const found = occlusionMaps(batchProbabilities, classes.length, inked, targets, window, stride, side);
  const rows = Array.from({ length: side }, (_, r) => Array.from(digit.subarray(r * side, (r + 1) * side)));
  let featureMaps = null;
  if (maps) {
    const [, channels, height, width] = maps.dims;
    const count = Math.min(method.maps, channels);
    featureMaps = { layer: layer.layer, kinds: layer.kinds, channels,
      ...quantize(maps.data.subarray(0, count * height * width), [count, height, width]) };
  }
  return {
    answer: { verdict: answer.verdict, text: answer.text, digit: answer.digit, runner_up: answer.runner_up,
      probability: answer.probability },
    classes,
    probabilities: answer.probabilities,
    image: rows,
    method: { name: "occlusion", score: "log-odds", window, stride },
    feature_maps: featureMaps,
    saliency: found.map(({ values, total }, k) => ({
      class: targets[k], name: classes[targets[k]], probability: answer.probabilities[targets[k]],
      total, ...quantize(values, [side, side]),
    })),
  };
}
