// The drawing page: strokes on a white canvas (dark ink, like paper), sent to the JSON API
// while drawing; the verdict ("7", "4 or 9?", "not a digit"), the calibrated probability of
// each class and the 28x28 input are shown beside it (and the verdict under the canvas on a phone).
"use strict";

(() => {
  const SIZES = { digit: [280, 280], number: [560, 280] };
  // MNIST strokes are about 2.5 px in a 20 px tall digit (1/8); a digit drawn over about 3/4
  // of the canvas height gets that proportion from a line 9% of the canvas height.
  const STROKE = 0.09;
  const DEBOUNCE_MS = 150;

  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const paper = $("paper");
  const status = $("status");

  let mode = "digit";
  let items = []; // what is on the canvas, in order: {stroke: [[x, y], ...]} or {image, fit}
  let drawing = null; // the stroke being drawn
  let timer = null;
  let inFlight = null; // AbortController of the request in progress
  let generation = 0; // answers to older drawings are dropped

  let classes = [..."0123456789"]; // replaced by the served model's classes

  // A probability as a person reads it: never "100%" (no model is certain), never "0%" either.
  function percent(p) {
    const pct = p * 100;
    if (pct >= 99.9) return "over 99.9%";
    if (pct > 0 && pct < 0.1) return "under 0.1%";
    return `${pct < 10 ? pct.toFixed(1) : pct.toFixed(0)}%`;
  }

  function buildBars() {
    $("bars").replaceChildren(...classes.map((name) => {
      const li = document.createElement("li");
      li.innerHTML = `<span></span><span class="track"><span class="fill"></span></span>` +
        `<span class="pct">–</span>`;
      li.firstChild.textContent = name;
      li.setAttribute("aria-label", `${name}: no answer yet`);
      return li;
    }));
  }

  function showBars(probabilities) {
    const best = probabilities.indexOf(Math.max(...probabilities));
    [...$("bars").children].forEach((li, c) => {
      const p = probabilities[c] ?? 0;
      li.querySelector(".fill").style.width = `${p * 100}%`;
      li.querySelector(".pct").textContent = percent(p).replace("over ", ">").replace("under ", "<");
      li.classList.toggle("best", c === best);
      li.setAttribute("aria-label", `${classes[c]}: ${(p * 100).toFixed(1)} percent`);
    });
  }

  function resetBars() {
    [...$("bars").children].forEach((li, c) => {
      li.querySelector(".fill").style.width = "0";
      li.querySelector(".pct").textContent = "–";
      li.classList.remove("best");
      li.setAttribute("aria-label", `${classes[c]}: no answer yet`);
    });
  }

  function setStatus(text, isError = false) {
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  // ---- the canvas -------------------------------------------------------------------------

  function redraw() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = "#111";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = Math.round(pad.height * STROKE);
    for (const item of items) {
      if (item.image) {
        const { x, y, scale } = item.fit;
        ctx.drawImage(item.image, x, y, item.image.width * scale, item.image.height * scale);
      } else {
        drawStroke(item.stroke);
      }
    }
    const empty = items.length === 0;
    $("placeholder").hidden = !empty;
    $("undo").disabled = empty;
    $("clear").disabled = empty;
  }

  function drawStroke(points) {
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    // a single tap is a dot: a zero-length line with round caps
    for (const [x, y] of points.length > 1 ? points.slice(1) : points) ctx.lineTo(x, y);
    ctx.stroke();
  }

  function canvasPoint(event) {
    const r = pad.getBoundingClientRect();
    return [(event.clientX - r.left) * (pad.width / r.width), (event.clientY - r.top) * (pad.height / r.height)];
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 && event.pointerType === "mouse") return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    drawing = { stroke: [canvasPoint(event)] };
    items.push(drawing);
    redraw();
  });

  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) drawing.stroke.push(canvasPoint(e));
    redraw();
    schedule();
  });

  function endStroke() {
    if (!drawing) return;
    drawing = null;
    predictNow();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

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
    resetBars();
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

  function fit(image) {
    const scale = Math.min(pad.width / image.width, pad.height / image.height);
    return { scale, x: (pad.width - image.width * scale) / 2, y: (pad.height - image.height * scale) / 2 };
  }

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
    const controller = new AbortController();
    inFlight = controller;
    $("result").setAttribute("aria-busy", "true");
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
      // feedback.js offers Right / Wrong for this answer, and sends this very image with it
      document.dispatchEvent(new CustomEvent("digitnet:answer", { detail: { mode, image: blob, answer } }));
    } catch (error) {
      if (error.name === "AbortError" || mine !== generation) return;
      hideAnswers();
      resetBars();
      setStatus(error.message, true);
    } finally {
      if (mine === generation) $("result").setAttribute("aria-busy", "false");
    }
  }

  function hideAnswers() {
    document.dispatchEvent(new Event("digitnet:cleared"));
    $("digit-result").hidden = true;
    $("number-result").hidden = true;
    $("note").hidden = true;
    $("quick").hidden = true;
  }

  // What the verdict says, in words: the status line, the confidence line, the quick line.
  function verdictWords(answer) {
    const p = answer.probabilities;
    if (answer.verdict === "not_a_digit") {
      return { status: "That does not look like a digit.", confidence: `${percent(answer.probability)} sure it is not a digit` };
    }
    if (answer.verdict === "unsure") {
      return {
        status: `Unsure: ${answer.digit} or ${answer.runner_up}?`,
        confidence: `${answer.digit}: ${percent(p[answer.digit])}, ${answer.runner_up}: ${percent(p[answer.runner_up])}`,
      };
    }
    return { status: `It is a ${answer.digit}.`, confidence: `${percent(answer.probability)} sure` };
  }

  function showDigit(answer) {
    const words = verdictWords(answer);
    $("digit").textContent = answer.text;
    $("digit").className = `digit ${answer.verdict}`;
    $("confidence").textContent = words.confidence;
    $("seen").src = `data:image/png;base64,${answer.preprocessed}`;
    $("digit-result").hidden = false;
    const several = answer.number_of_digits;
    $("note-text").textContent = several ? `This looks like a number of ${several} digits.` : "";
    $("note").hidden = !several;
    showQuick(answer.text, words.confidence);
    showBars(answer.probabilities);
    setStatus(words.status);
  }

  function showQuick(text, detail) {
    const quick = $("quick");
    quick.textContent = text;
    const small = document.createElement("small");
    small.textContent = ` · ${detail}`;
    quick.appendChild(small);
    quick.hidden = false;
  }

  function showNumber(answer) {
    $("number").textContent = answer.text;
    const chips = answer.digits.map((d) => {
      const li = document.createElement("li");
      li.innerHTML = `<img alt="28 by 28 input for the digit ${d.digit}" width="56" height="56">` +
        `<strong>${d.digit}</strong><span>${(d.probability * 100).toFixed(0)}%</span>`;
      li.querySelector("img").src = `data:image/png;base64,${d.preprocessed}`;
      return li;
    });
    $("digits").replaceChildren(...chips);
    showBoxes(answer.digits);
    $("number-result").hidden = false;
    showQuick(answer.text, `${answer.digits.length} digits`);
    setStatus(`It reads ${answer.text}.`);
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
  $("undo").addEventListener("click", undo);
  $("to-number").addEventListener("click", () => {
    document.querySelector("input[name=mode][value=number]").checked = true;
    setMode("number");
  });
  $("clear").addEventListener("click", clear);
  document.querySelectorAll("input[name=mode]").forEach((radio) =>
    radio.addEventListener("change", () => setMode(radio.value)));

  async function showModel() {
    try {
      const m = await (await fetch("/api/model")).json();
      classes = m.classes;
      buildBars();
      const accuracy = m.test_accuracy == null ? "" : `, ${(m.test_accuracy * 100).toFixed(1)}% on the test set`;
      $("model-info").textContent = `Model ${m.run}: ${m.architecture}, ` +
        `${m.parameters.toLocaleString("en")} parameters${accuracy}`;
    } catch {
      $("model-info").textContent = "Model facts unavailable";
    }
  }

  buildBars();
  setMode(document.querySelector("input[name=mode]:checked").value);
  showModel();
})();
