// Reading a digit on this device: the reader's ONNX model in onnxruntime-web (its plain
// WebAssembly build, one thread: more would need cross-origin isolation headers), after the
// same preprocessing (imaging.js) and with the same verdict (verdict.js) as the server; and
// what the network sees in it, as /api/explain computes it (explain.js).
// A folder of the reader (model.json, the model and the runtime) is all it needs.

import { explanation, occlusionBatch } from "./explain.js";
import { checkSize, FIELD, ImageError, PREPROCESS_VERSION, toMnist } from "./imaging.js";
import { answer, verdictFrom } from "./verdict.js";

// The reader in the folder at `base` (a URL ending in "/"): {info, read, explain}. Fails with
// the folder's own reason when it has no reader (the server says why on-device is unavailable).
export async function openReader(base) {
  const root = new URL(base, document.baseURI);
  const response = await fetch(new URL("model.json", root));
  const info = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(info.detail || `no reader at ${root} (${response.status})`);
  // the page must turn pictures into 28x28 digits exactly as the server does for this model
  if (info.preprocess !== PREPROCESS_VERSION) {
    throw new Error(`the reader at ${root} expects preprocessing ${info.preprocess || "(unnamed)"}, this page does ` +
      `${PREPROCESS_VERSION}; export the reader again with this version of digitnet`);
  }
  const ort = await import(new URL(info.runtime.module, root).href);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = root.href;
  const session = await ort.InferenceSession.create(new URL(info.model, root).href, { executionProviders: ["wasm"] });
  const verdict = verdictFrom(info.calibration);
  // The first layer is loaded now, beside the model, so that a page gone offline explains too;
  // without it the page reads all the same (the explanation says why it cannot show the maps).
  const layer = info.explain?.first_layer;
  const layerSession = layer && ort.InferenceSession.create(new URL(layer.model, root).href, { executionProviders: ["wasm"] });
  layerSession?.catch(() => {});

  // RGBA pixels -> the answer in the API's shape (/api/predict), and how long it took in ms.
  // drawing: the pixels are the page's own canvas with strokes only (see toMnist).
  async function read(rgba, width, height, drawing = false) {
    const start = performance.now();
    const digit = toMnist(rgba, width, height, drawing ? true : null);
    const input = new ort.Tensor("float32", Float32Array.from(digit, (v) => v / 255), [1, 1, FIELD, FIELD]);
    const output = await session.run({ [info.input]: input });
    const probabilities = Array.from(output[info.output].data);
    return {
      ...answer(probabilities, verdict, info.classes), probabilities, number_of_digits: null,
      preprocessed: pngBase64(digit), ms: performance.now() - start, image28: digit,
    };
  }

  // What the network sees in the digit of an answer `read` gave: occlusion through the same
  // model (one batch of the picture, a blank page and a copy per 4x4 square with ink) and the
  // first layer's maps, in /api/explain's shape (feature_maps null when the folder has no
  // first layer).
  async function explain(read) {
    const method = info.explain;
    if (!method) throw new Error("this reader folder cannot show what the network sees; export it again");
    const pixels = Float32Array.from(read.image28, (v) => v / 255);
    const { inked, batch } = occlusionBatch(pixels, method.window, method.stride, FIELD);
    const shape = [batch.length / (FIELD * FIELD), 1, FIELD, FIELD];
    const output = await session.run({ [info.input]: new ort.Tensor("float32", batch, shape) });
    let maps = null;
    if (layer) {
      const out = await (await layerSession).run({ [layer.input]: new ort.Tensor("float32", pixels, [1, 1, FIELD, FIELD]) });
      maps = { data: out[layer.output].data, dims: out[layer.output].dims };
    }
    return explanation({ answer: read, classes: info.classes, digit: read.image28, inked, maps, layer, method,
      batchProbabilities: output[info.output].data, side: FIELD });
  }
  return { info, read, explain };
}

// A picture file -> its RGBA pixels, upright (EXIF), colours as stored.
export async function decodeFile(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", imageOrientation: "from-image" });
  } catch {
    throw new ImageError(`${file.name || "image"}: not an image file this browser can read; use a PNG, JPEG or ` +
      "WebP file", "not_image");
  }
  checkSize(bitmap.width, bitmap.height);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

// uint8 (28 * 28) gray -> base64 PNG, as the server returns what the model saw.
function pngBase64(digit) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = FIELD;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(FIELD, FIELD);
  digit.forEach((v, i) => image.data.set([v, v, v, 255], 4 * i));
  ctx.putImageData(image, 0, 0);
  return canvas.toDataURL("image/png").split(",")[1];
}
