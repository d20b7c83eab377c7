// How both pages show one digit's answer: the status line, the verdict with the 28x28 image the
// reader saw, a bar per class and how long the reading took. The elements are the pages' own
// (same ids in index.html and site.html).
import { percent, verdictWords } from "./verdict.js";

const $ = (id) => document.getElementById(id);

export function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// The drawing's text alternative: what was read from it ("read as 7", "empty", "not read").
export function describeDrawing(state) {
  $("pad").setAttribute("aria-label", `Drawing area, ${state}`);
}

// One bar per class of the model, each waiting for an answer. A bar is a meter named by its
// class, so that a screen reader says "7, 93%"; the text beside it is for the eye.
export function buildBars(classes) {
  $("bars").replaceChildren(...classes.map((name) => {
    const li = document.createElement("li");
    li.innerHTML = `<span aria-hidden="true"></span><span class="track" role="meter" aria-valuemin="0" ` +
      `aria-valuemax="100"><span class="fill"></span></span><span class="pct" aria-hidden="true">–</span>`;
    li.firstChild.textContent = name;
    li.querySelector(".track").setAttribute("aria-label", name);
    return li;
  }));
  showBars([]);
}

// The probability of each class on its bar; empty probabilities reset the bars.
export function showBars(probabilities) {
  const best = probabilities.length ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  [...$("bars").children].forEach((li, c) => {
    const p = probabilities[c];
    const track = li.querySelector(".track");
    li.querySelector(".fill").style.width = `${(p ?? 0) * 100}%`;
    li.querySelector(".pct").textContent = p === undefined ? "–" : percent(p).replace("over ", ">").replace("under ", "<");
    li.classList.toggle("best", c === best);
    track.setAttribute("aria-valuenow", ((p ?? 0) * 100).toFixed(1));
    track.setAttribute("aria-valuetext", p === undefined ? "no answer yet" : percent(p));
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
  describeDrawing(`read as ${answer.text}`);
  return words;
}

export function showTime(place, ms) {
  $("timing").textContent = `Read ${place} in ${ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms.`;
  $("timing").hidden = false;
}
