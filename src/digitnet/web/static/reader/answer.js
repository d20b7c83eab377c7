// How both pages show one digit's answer: the status line, the verdict with the 28x28 image the
// reader saw, a bar per class and how long the reading took. The elements are the pages' own
// (same ids in index.html and site.html).
import { percent, verdictWords } from "./verdict.js";

const $ = (id) => document.getElementById(id);

export function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// One bar per class of the model, each waiting for an answer.
export function buildBars(classes) {
  $("bars").replaceChildren(...classes.map((name) => {
    const li = document.createElement("li");
    li.innerHTML = `<span></span><span class="track"><span class="fill"></span></span><span class="pct">–</span>`;
    li.firstChild.textContent = name;
    li.setAttribute("aria-label", `${name}: no answer yet`);
    return li;
  }));
}

// The probability of each class on its bar; empty probabilities reset the bars.
export function showBars(probabilities) {
  const best = probabilities.length ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  [...$("bars").children].forEach((li, c) => {
    const p = probabilities[c];
    const name = li.firstChild.textContent;
    li.querySelector(".fill").style.width = `${(p ?? 0) * 100}%`;
    li.querySelector(".pct").textContent = p === undefined ? "–" : percent(p).replace("over ", ">").replace("under ", "<");
    li.classList.toggle("best", c === best);
    li.setAttribute("aria-label", p === undefined ? `${name}: no answer yet` : `${name}: ${(p * 100).toFixed(1)} percent`);
  });
}

// The verdict ("7", "4 or 9?", "not a digit"), the image read, the bars and the status; returns
// the verdict in words for what a page adds of its own.
export function showDigit(answer) {
  const words = verdictWords(answer);
  $("digit").textContent = answer.text;
  $("digit").className = `digit ${answer.verdict}`;
  $("confidence").textContent = words.confidence;
  $("seen").src = `data:image/png;base64,${answer.preprocessed}`;
  $("digit-result").hidden = false;
  showBars(answer.probabilities);
  setStatus(words.status);
  return words;
}

export function showTime(place, ms) {
  $("timing").textContent = `Read ${place} in ${ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms.`;
  $("timing").hidden = false;
}
