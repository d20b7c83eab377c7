// The drawing page: strokes on a white canvas (dark ink, like paper), drawn with a pointer or
// with keys, read while drawing by the JSON API or, with the switch on "this device", in the
// browser (reader/device.js); the verdict ("7", "4 or 9?", "not a digit"), the calibrated
// probability of each class and the 28x28 input are shown beside it (and the verdict under the
// canvas on a phone), and "What the network sees" explains a digit's answer when opened.
import { decodeFile, openReader } from "./reader/device.js";
import { captureStrokes, fit as fitTo, keyboardPen, onlyStrokes, paint } from "./reader/ink.js";
import { buildBars, describeDrawing, setStatus, showBars, showDigit as showVerdict, showTime } from "./reader/answer.js";
import { explainer } from "./reader/sees.js";

(() => {
  const SIZES = { digit: [280, 280], number: [560, 280] };
  const DEBOUNCE_MS = 150;

  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const paper = $("paper");

  let mode = "digit";
  let items = []; // what is on the canvas, in order: {stroke: [[x, y], ...]} or {image, fit}
  let timer = null;
  let inFlight = null; // AbortController of the request in progress
  let generation = 0; // answers to older drawings are dropped

  let where = "server"; // who reads: "server" or "device" (one digit only)
  let reader = null; // the on-device reader, a promise once it is asked for

  // ---- the canvas -------------------------------------------------------------------------

  function redraw() {
    paint(ctx, items);
    const empty = items.length === 0;
    $("placeholder").hidden = !empty;
    $("undo").disabled = empty;
    $("clear").disabled = empty;
  }

  const strokes = {
    started: redraw,
    moved: () => {
      redraw();
      schedule();
    },
    ended: () => predictNow(),
  };
  captureStrokes(pad, () => items, strokes);
  keyboardPen(pad, $("pen"), () => items, strokes);
  const seen = explainer(); // "What the network sees"

  function undo() {
    if (!items.length) return;
    items.pop();
    redraw();
    items.length ? predictNow() : showEmpty();
  }

  function clear() {
    items = [];
    redraw();
    showEmpty();
  }

  function showEmpty() {
    generation++;
    if (inFlight) inFlight.abort();
    hideAnswers();
    $("boxes").replaceChildren();
    $("result").setAttribute("aria-busy", "false");
    showBars([]);
    describeDrawing("empty");
    setStatus(mode === "digit" ? "Draw a digit to begin." : "Write a number of a few digits, side by side.");
  }

  function setMode(next) {
    mode = next;
    const [w, h] = SIZES[mode];
    pad.width = w;
    pad.height = h;
    document.body.classList.toggle("number-mode", mode === "number");
    $("placeholder").textContent = mode === "digit" ? "Draw here" : "Write a number here";
    $("input-title").textContent = mode === "digit" ? "Your digit" : "Your number";
    $("bars").hidden = mode === "number";
    // Strokes stay when the canvas widens (same height, so a number drawn as a digit is kept);
    // going back to the narrower digit canvas would cut them, so they go.
    items = items.filter((item) => item.image || mode === "number")
      .map((item) => (item.image ? { ...item, fit: fit(item.image) } : item));
    redraw();
    items.length ? predictNow() : showEmpty();
  }

  // ---- images from outside ----------------------------------------------------------------

  const fit = (image) => fitTo(image, pad);

  async function useFile(file) {
    if (!file) return;
    let image = null;
    try {
      image = await createImageBitmap(file);
    } catch {
      // the browser cannot show it; the server still says what is wrong with it
    }
    items = image ? [{ image, file, fit: fit(image) }] : [];
    redraw();
    predictNow(file);
  }

  $("upload").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => {
    useFile($("file").files[0]);
    $("file").value = "";
  });
  paper.addEventListener("dragover", (event) => {
    event.preventDefault();
    paper.classList.add("dragging");
  });
  paper.addEventListener("dragleave", () => paper.classList.remove("dragging"));
  paper.addEventListener("drop", (event) => {
    event.preventDefault();
    paper.classList.remove("dragging");
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((i) => i.type.startsWith("image/"));
    if (item) {
      event.preventDefault();
      useFile(item.getAsFile());
    }
  });

  // ---- asking the server ------------------------------------------------------------------

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => predictNow(), DEBOUNCE_MS);
  }

  // An untouched upload is sent as it is, at full resolution; anything drawn is sent as the canvas.
  function currentImage() {
    if (items.length === 1 && items[0].file) return Promise.resolve(items[0].file);
    return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  }

  async function predictNow(file) {
    clearTimeout(timer);
    const mine = ++generation;
    if (inFlight) inFlight.abort();
    if (where === "device" && mode === "digit") return readOnDevice(mine, file);
    const controller = new AbortController();
    inFlight = controller;
    $("result").setAttribute("aria-busy", "true");
    const start = performance.now();
    const blob = file || await currentImage();
    if (!blob) return showEmpty();
    const body = new FormData();
    body.append("file", blob, blob.name || "drawing.png");
    setStatus("Reading…");
    try {
      const response = await fetch(mode === "digit" ? "/api/predict" : "/api/read",
        { method: "POST", body, signal: controller.signal });
      const answer = await response.json();
      if (mine !== generation) return;
      if (!response.ok) throw new Error(answer.detail || `the server answered ${response.status}`);
      mode === "digit" ? showDigit(answer) : showNumber(answer);
      if (mode === "digit") seen.show((signal) => explainOnServer(blob, signal));
      showTime("on the server", performance.now() - start);
      // feedback.js offers Right / Wrong for this answer, and sends this very image with it
      document.dispatchEvent(new CustomEvent("digitnet:answer", { detail: { mode, image: blob, answer } }));
    } catch (error) {
      if (error.name === "AbortError" || mine !== generation) return;
      hideAnswers();
      showBars([]);
      setStatus(error.message, true);
    } finally {
      if (mine === generation) $("result").setAttribute("aria-busy", "false");
    }
  }

  // The same answer computed in this browser: the canvas's pixels (or the untouched upload's,
  // at full resolution) through reader/device.js.
  async function readOnDevice(mine, file) {
    $("result").setAttribute("aria-busy", "true");
    setStatus("Reading on this device…");
    try {
      const device = await (reader ??= openReader("/ondevice/"));
      const upload = file || (items.length === 1 && items[0].file);
      const pixels = upload ? await decodeFile(upload) : ctx.getImageData(0, 0, pad.width, pad.height);
      if (mine !== generation) return;
      const answer = await device.read(pixels.data, pixels.width, pixels.height, !upload && onlyStrokes(items));
      if (mine !== generation) return;
      showDigit(answer);
      seen.show(() => device.explain(answer));
      showTime("on this device", answer.ms);
      // a correction is sent with the image itself: the server reads it again with its model
      const image = upload || await currentImage();
      if (mine === generation) {
        document.dispatchEvent(new CustomEvent("digitnet:answer", { detail: { mode, image, answer } }));
      }
    } catch (error) {
      if (mine !== generation) return;
      hideAnswers();
      showBars([]);
      setStatus(error.message, true);
    } finally {
      if (mine === generation) $("result").setAttribute("aria-busy", "false");
    }
  }

  // What the network sees in the digit of this image, as /api/explain says it.
  async function explainOnServer(blob, signal) {
    const body = new FormData();
    body.append("file", blob, blob.name || "drawing.png");
    const response = await fetch("/api/explain", { method: "POST", body, signal });
    const found = await response.json();
    if (!response.ok) throw new Error(found.detail || `the server answered ${response.status}`);
    return found;
  }

  function hideAnswers() {
    seen.hide();
    $("timing").hidden = true;
    document.dispatchEvent(new Event("digitnet:cleared"));
    $("digit-result").hidden = true;
    $("number-result").hidden = true;
    $("note").hidden = true;
    $("quick").hidden = true;
    describeDrawing("not read");
  }

  function showDigit(answer) {
    const words = showVerdict(answer);
    const several = answer.number_of_digits;
    $("note-text").textContent = several ? `This looks like a number of ${several} digits.` : "";
    $("note").hidden = !several;
    showQuick(answer.text, words.confidence);
  }

  function showQuick(text, detail) {
    const quick = $("quick");
    quick.textContent = text;
    const small = document.createElement("small");
    small.textContent = ` · ${detail}`;
    quick.appendChild(small);
    quick.hidden = false;
  }

  // An empty text is an answer too: no digit on the line ("not a number").
  function showNumber(answer) {
    seen.hide();
    $("number").textContent = answer.text || "—";
    $("number-confidence").textContent = answer.digits.length
      ? `${(answer.probability * 100).toFixed(1)}% sure of the whole number${answer.unsure ? " (unsure)" : ""}`
      : "";
    const chips = answer.digits.map((d) => {
      const li = document.createElement("li");
      li.classList.toggle("unsure", d.unsure);
      const label = d.unsure ? `${d.digit} or ${d.runner_up}?` : `${d.digit}`;
      li.innerHTML = `<img alt="the ink read as ${label}" width="56" height="56">` +
        `<strong></strong><span>${(d.probability * 100).toFixed(0)}%</span>`;
      li.querySelector("strong").textContent = label;
      li.querySelector("img").src = `data:image/png;base64,${d.preprocessed}`;
      return li;
    });
    $("digits").replaceChildren(...chips);
    $("strip").src = `data:image/png;base64,${answer.preprocessed}`;
    showBoxes(answer.digits);
    $("number-result").hidden = false;
    showQuick(answer.text || "—", answer.digits.length ? `${answer.digits.length} digits` : "not a number");
    setStatus(answer.digits.length ? `It reads ${answer.verdict}.` : "No digits found: not a number.");
    describeDrawing(`read as ${answer.text || "not a number"}`);
  }

  // Boxes come in the coordinates of the image sent: the canvas, or an untouched upload.
  function showBoxes(digits) {
    const upload = items.length === 1 && items[0].file ? items[0] : null;
    const { x: ox, y: oy, scale } = upload ? upload.fit : { x: 0, y: 0, scale: 1 };
    $("boxes").replaceChildren(...digits.map((d) => {
      const [x, y, w, h] = d.box;
      const span = document.createElement("span");
      span.style.left = `${((ox + x * scale) / pad.width) * 100}%`;
      span.style.top = `${((oy + y * scale) / pad.height) * 100}%`;
      span.style.width = `${((w * scale) / pad.width) * 100}%`;
      span.style.height = `${((h * scale) / pad.height) * 100}%`;
      span.innerHTML = `<b>${d.digit}</b>`;
      return span;
    }));
  }

  // ---- keyboard and start -----------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type !== "radio") return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    } else if (event.key === "Escape") {
      clear();
    }
  });
  // Enter on the focused drawing reads it again (after an error, say); Space is the pen's.
  pad.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    if (items.length) predictNow();
  });
  $("undo").addEventListener("click", undo);
  $("to-number").addEventListener("click", () => {
    document.querySelector("input[name=mode][value=number]").checked = true;
    setMode("number");
  });
  $("clear").addEventListener("click", clear);
  document.querySelectorAll("input[name=mode]").forEach((radio) =>
    radio.addEventListener("change", () => setMode(radio.value)));
  document.querySelectorAll("input[name=where]").forEach((radio) =>
    radio.addEventListener("change", () => setWhere(radio.value)));

  function setWhere(next) {
    where = next;
    $("where-note").hidden = where === "server";
    // start loading (a second or two) now; a failure shows when a digit is read
    if (where === "device") (reader ??= openReader("/ondevice/")).catch(() => {});
    items.length ? predictNow() : showEmpty();
  }

  // Whether this server offers reading on the device, and if not, why (the switch says so).
  async function checkDevice() {
    const note = $("where-note");
    try {
      const response = await fetch("/ondevice/model.json");
      if (response.ok) {
        note.textContent = "Reads one digit in this browser; numbers are read on the server.";
        return;
      }
      note.textContent = (await response.json()).detail;
    } catch {
      note.textContent = "reading on this device is unavailable: the server cannot be reached";
    }
    document.querySelector("input[name=where][value=device]").disabled = true;
    note.hidden = false;
  }

  async function showModel() {
    try {
      const m = await (await fetch("/api/model")).json();
      buildBars(m.classes);
      const accuracy = m.test_accuracy == null ? "" : `, ${(m.test_accuracy * 100).toFixed(1)}% on the test set`;
      $("model-info").textContent = `Model ${m.run}: ${m.architecture}, ` +
        `${m.parameters.toLocaleString("en")} parameters${accuracy}`;
    } catch {
      $("model-info").textContent = "Model facts unavailable";
    }
  }

  buildBars([..."0123456789"]); // until the served model's classes are known
  setMode(document.querySelector("input[name=mode]:checked").value);
  showModel();
  checkDevice();
})();
