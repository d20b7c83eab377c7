// "What the network sees", the disclosure under a digit's answer on both pages: opening it asks
// for the explanation of the answer on show (the server's /api/explain, or the device's own in
// the same JSON, explain.js) and draws which pixels pushed the network towards its answer over
// the 28x28 picture (and towards the runner-up when unsure), and the first layer's feature maps.
// The elements are the pages' own (same ids in index.html and site.html).
import { percent } from "./verdict.js";

const $ = (id) => document.getElementById(id);
const TOWARDS = [207, 34, 46]; // red: the pixels spoke for the class
const AGAINST = [9, 105, 218]; // blue: against it
// magma, dark to bright, as `digitnet show explain` draws the maps
const RAMP = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];

// {show(ask), hide()}: `ask(signal)` gives a promise of the explanation of the answer on show;
// it is called when the disclosure is open (now, or once it is opened), again for each answer.
// One at a time: answers that come while one is worked on (drawing with it open) are dropped
// but the last, which follows.
export function explainer() {
  const details = $("explain");
  let ask = null;
  let current = null; // AbortController of the explanation being fetched or computed
  let again = false;
  let drawn = null; // the ask whose explanation is on show: opening again asks nothing

  async function load() {
    if (!details.open || !ask || ask === drawn) return;
    if (current) {
      again = true;
      current.abort(); // a request to the server stops; a computation here ends first
      return;
    }
    const mine = (current = new AbortController());
    const asked = ask;
    details.setAttribute("aria-busy", "true");
    if ($("explain-body").hidden) setStatus("Looking inside the network…");
    try {
      const found = await asked(mine.signal);
      if (!again && asked === ask) {
        draw(found);
        drawn = asked;
        setStatus("");
      }
    } catch (error) {
      if (!again && asked === ask && error.name !== "AbortError") {
        $("explain-body").hidden = true;
        setStatus(`Could not look inside the network: ${error.message}`, true);
      }
    } finally {
      current = null;
      if (again) {
        again = false;
        load();
      } else {
        details.setAttribute("aria-busy", "false");
      }
    }
  }
  details.addEventListener("toggle", load);

  return {
    show(next) {
      ask = next;
      details.hidden = false;
      load();
    },
    hide() {
      ask = null;
      current?.abort();
      details.hidden = true;
    },
  };
}

function setStatus(text, isError = false) {
  $("explain-status").textContent = text;
  $("explain-status").hidden = !text;
  $("explain-status").classList.toggle("error", isError);
}

// The explanation (/api/explain's JSON) on the page.
function draw(e) {
  const image = e.image.flat();
  const limit = Math.max(...e.saliency.map((s) => s.scale)) || 1; // one scale: a weak push looks weak
  $("saliency").replaceChildren(...e.saliency.map((s, k) => {
    const figure = document.createElement("figure");
    const canvas = pixelCanvas(28, 28, (i) => pushColour(image[i], (s.values[Math.floor(i / 28)][i % 28] * s.scale) / 255, limit));
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `Where the network saw ${s.name}: red pixels spoke for it, blue against it; ` +
      `${strongest(s.values)}`);
    const caption = document.createElement("figcaption");
    caption.textContent = `${k ? "Runner-up" : "Answer"}: ${s.name} (${percent(s.probability)})`;
    figure.append(canvas, caption);
    return figure;
  }));
  $("explain-how").textContent = `Red: pixels that spoke for the class (blanking them lowered its odds); blue: ` +
    `against it. Measured by occlusion: each ${e.method.window}×${e.method.window} square of the 28×28 picture ` +
    "blanked in turn.";
  drawMaps(e.feature_maps);
  $("explain-body").hidden = false;
}

function drawMaps(fm) {
  $("maps-figure").hidden = !fm;
  if (!fm) return;
  const [count, height, width] = fm.shape;
  const flat = fm.values.flat(2);
  const low = Math.min(...flat);
  const high = Math.max(...flat, low + 1);
  $("maps").replaceChildren(...fm.values.map((map) => {
    const values = map.flat();
    const canvas = pixelCanvas(width, height, (i) => ramp((values[i] - low) / (high - low)));
    canvas.setAttribute("aria-hidden", "true");
    return canvas;
  }));
  const shown = count < fm.channels ? `${count} of its ${fm.channels}` : `all ${count} of its`;
  const words = `The first layer (${fm.kinds.join(", ")}): ${shown} feature maps, what each filter responds to ` +
    "in this digit, dark low, bright high.";
  $("maps").setAttribute("aria-label", words);
  $("maps-caption").textContent = words;
}

// A canvas of width x height pixels, pixel i coloured [r, g, b] by colour(i).
function pixelCanvas(width, height, colour) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) pixels.data.set([...colour(i), 255], 4 * i);
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

// The picture's ink as pale grey on white, the push over it in red or blue, as strong as it is.
function pushColour(ink, push, limit) {
  const paper = 255 - 0.45 * ink;
  const a = Math.min(1, Math.abs(push) / limit);
  const tint = push > 0 ? TOWARDS : AGAINST;
  return tint.map((c) => Math.round(paper * (1 - a) + c * a));
}

function ramp(t) {
  const at = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const k = Math.min(Math.floor(at), RAMP.length - 2);
  return RAMP[k].map((c, j) => Math.round(c + (RAMP[k + 1][j] - c) * (at - k)));
}

// Where the strongest push for the class is, in words ("strongest at the top left").
function strongest(values) {
  let best = 0;
  let where = null;
  values.forEach((row, r) => row.forEach((v, c) => {
    if (v > best) [best, where] = [v, [r, c]];
  }));
  if (!where) return "no pixel spoke for it";
  const band = (v) => (v < 10 ? 0 : v < 19 ? 1 : 2);
  const row = ["top", "middle", "bottom"][band(where[0])];
  const column = ["left", "centre", "right"][band(where[1])];
  return row === "middle" && column === "centre" ? "strongest in the middle" : `strongest at the ${row} ${column}`;
}
