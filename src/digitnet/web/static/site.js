// The static site's page: the served page's drawing and reading, with every answer computed in
// this browser (reader/device.js) from the reader folder the page lies in, and what the network
// sees in it. One digit at a time.
import { decodeFile, openReader } from "./reader/device.js";
import { captureStrokes, fit, keyboardPen, onlyStrokes, paint } from "./reader/ink.js";
import { buildBars, describeDrawing, setStatus, showBars, showDigit, showTime } from "./reader/answer.js";
import { explainer } from "./reader/sees.js";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });

let items = []; // what is on the canvas, in order: {stroke: [[x, y], ...]} or {image, file, fit}
let generation = 0; // answers to older drawings are dropped
let busy = false; // a reading is running; `again` asks for one more when it ends
let again = false;
const reader = openReader("./");

function redraw() {
  paint(ctx, items);
  $("placeholder").hidden = items.length > 0;
  $("undo").disabled = $("clear").disabled = items.length === 0;
}

const strokes = {
  started: redraw,
  moved: () => {
    redraw();
    read(); // answers follow the pen: reading takes a few milliseconds here
  },
  ended: () => read(),
};
captureStrokes(pad, () => items, strokes);
keyboardPen(pad, $("pen"), () => items, strokes);
const seen = explainer(); // "What the network sees"

// Read what is on the canvas now; while a reading runs, one more follows it with the latest.
async function read() {
  const mine = ++generation;
  if (!items.length) return showEmpty();
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  $("result").setAttribute("aria-busy", "true");
  try {
    const device = await reader;
    const upload = items.length === 1 && items[0].file;
    const pixels = upload ? await decodeFile(upload) : ctx.getImageData(0, 0, pad.width, pad.height);
    const answer = await device.read(pixels.data, pixels.width, pixels.height, onlyStrokes(items));
    if (mine === generation) show(answer);
  } catch (error) {
    if (mine === generation) showError(error.message);
  } finally {
    busy = false;
    if (again) {
      again = false;
      read();
    } else {
      $("result").setAttribute("aria-busy", "false");
    }
  }
}

function show(answer) {
  showDigit(answer);
  seen.show(() => reader.then((device) => device.explain(answer)));
  $("quick").textContent = answer.text;
  $("quick").hidden = false;
  showTime("on this device", answer.ms);
}

function showError(message) {
  seen.hide();
  for (const id of ["digit-result", "quick", "timing"]) $(id).hidden = true;
  showBars([]);
  setStatus(message, true);
  describeDrawing("not read");
}

function showEmpty() {
  generation++;
  seen.hide();
  for (const id of ["digit-result", "quick", "timing"]) $(id).hidden = true;
  showBars([]);
  setStatus("Draw a digit to begin.");
  describeDrawing("empty");
  if (!busy) $("result").setAttribute("aria-busy", "false");
}

async function useFile(file) {
  if (!file) return;
  let image = null;
  try {
    image = await createImageBitmap(file);
  } catch {
    // not a picture this browser shows; reading it says so
  }
  items = image ? [{ image, file, fit: fit(image, pad) }] : [];
  redraw();
  if (image) read();
  else showError(`${file.name}: not an image file this browser can read; use a PNG, JPEG or WebP file`);
}

function undo() {
  items.pop();
  redraw();
  read();
}

function clear() {
  items = [];
  redraw();
  showEmpty();
}

// Enter on the focused drawing reads it again; Space is the pen's.
pad.addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  read();
});
$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clear);
$("upload").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", () => {
  useFile($("file").files[0]);
  $("file").value = "";
});
$("paper").addEventListener("dragover", (event) => {
  event.preventDefault();
  $("paper").classList.add("dragging");
});
$("paper").addEventListener("dragleave", () => $("paper").classList.remove("dragging"));
$("paper").addEventListener("drop", (event) => {
  event.preventDefault();
  $("paper").classList.remove("dragging");
  useFile(event.dataTransfer.files[0]);
});
document.addEventListener("paste", (event) => {
  const item = [...event.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) {
    event.preventDefault();
    useFile(item.getAsFile());
  }
});
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clear();
  }
});

redraw();
reader.then((device) => {
  const m = device.info;
  buildBars(m.classes);
  const accuracy = m.test_accuracy == null ? "" : `, ${(m.test_accuracy * 100).toFixed(1)}% on the test set`;
  $("model-info").textContent = `Model ${m.run}: ${m.architecture}, ${(m.parameters ?? 0).toLocaleString("en")} ` +
    `parameters${accuracy}; read in this browser by ${m.runtime.name} ${m.runtime.version}`;
  if (items.length) read();
  else showEmpty();
}, (error) => {
  $("model-info").textContent = "Model unavailable";
  showError(`the reader could not be loaded (${error.message}); serve this folder over HTTP, e.g. ` +
    "'python -m http.server'");
});
