// Right / Wrong under each answer: the person's correction goes to POST /api/corrections with
// the very image that was read (the server reads it again and keeps both), so that
// `digitnet finetune` can learn from it. Shown only when the server collects corrections.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("feedback");
  const status = $("feedback-status");
  let collecting = false;
  let current = null; // {mode, image, answer} of the answer on show

  // What the model said, as a label: its most likely digit, "not a digit", or the number read.
  function said({ mode, answer }) {
    if (mode === "number") return answer.text;
    return answer.verdict === "not_a_digit" ? "not a digit" : String(answer.digit);
  }

  function setBusy(busy) {
    for (const control of form.querySelectorAll("button, select, input")) control.disabled = busy;
  }

  function show(detail) {
    if (!collecting) return;
    current = detail;
    const digit = detail.mode === "digit";
    // "4 or 9?": Right names the digit it stands for
    $("right").textContent = digit && detail.answer.verdict === "unsure" ? `Right: ${detail.answer.digit}` : "Right";
    $("wrong-digit").hidden = !digit;
    $("wrong-number").hidden = digit;
    $("label-digit").value = "";
    $("label-number").value = digit ? "" : detail.answer.text;
    status.textContent = "";
    status.classList.remove("error");
    setBusy(false);
    form.hidden = false;
  }

  function hide() {
    current = null;
    form.hidden = true;
  }

  async function send(label) {
    const sending = current;
    const body = new FormData();
    body.append("file", sending.image, sending.image.name || "drawing.png");
    body.append("label", label);
    body.append("kind", sending.mode);
    setBusy(true);
    status.classList.remove("error");
    status.textContent = "Sending…";
    try {
      const response = await fetch("/api/corrections", { method: "POST", body });
      const reply = await response.json();
      if (!response.ok) throw new Error(reply.detail || `the server answered ${response.status}`);
      if (sending !== current) return; // a newer answer is on show: its buttons stay as they are
      status.textContent = reply.right ? "Thanks: kept as a right answer." : `Thanks: kept as ${reply.label}.`;
    } catch (error) {
      if (sending !== current) return;
      status.textContent = error.message;
      status.classList.add("error");
      setBusy(false);
    }
  }

  $("right").addEventListener("click", () => current && send(said(current)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!current) return;
    const field = current.mode === "digit" ? $("label-digit") : $("label-number");
    const label = field.value.trim();
    if (!label) {
      status.textContent = current.mode === "digit" ? "Choose what it is first." : "Type the number first.";
      field.focus();
      return;
    }
    send(label);
  });
  // Keys typed here are for the form: Escape and Ctrl+Z must not clear or undo the drawing.
  form.addEventListener("keydown", (event) => event.stopPropagation());
  document.addEventListener("digitnet:answer", (event) => show(event.detail));
  document.addEventListener("digitnet:cleared", hide);

  fetch("/api/corrections/status")
    .then((response) => response.json())
    .then((reply) => { collecting = reply.collecting === true; })
    .catch(() => { collecting = false; });
})();
