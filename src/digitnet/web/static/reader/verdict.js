// The verdict on a reader's calibrated probabilities, as digitnet.runs.calibration gives
// it ("7", "4 or 9?", "not a digit"), and how the pages put it in words.

export const NOT_A_DIGIT = 10; // the class of everything that is not a digit, when a model has it
const f32 = Math.fround; // the server compares float32 probabilities in float32

// calibration.from_record: the thresholds a run recorded when it was calibrated, else the
// defaults (a model without the 11th class never says "not a digit").
export function verdictFrom(record) {
  if (!record) return { temperature: 1, reject: 0.5, close: 0.3 };
  return { temperature: Number(record.temperature), reject: Number(record.reject), close: Number(record.close) };
}

function argmax(values, from, to) {
  let best = from;
  for (let i = from + 1; i < to; i++) if (values[i] > values[best]) best = i;
  return best;
}

// calibration.decide and answers for one image: probabilities (10 or 11) -> the API's answer.
export function answer(probabilities, verdict, names) {
  const p = Array.from(probabilities, f32);
  const top = argmax(p, 0, NOT_A_DIGIT);
  const digits = p.slice(0, NOT_A_DIGIT);
  digits[top] = -Infinity;
  const runnerUp = argmax(digits, 0, NOT_A_DIGIT);
  const rejected = p.length > NOT_A_DIGIT && (p[NOT_A_DIGIT] >= f32(verdict.reject) || argmax(p, 0, p.length) === NOT_A_DIGIT);
  const rounded = (c) => Number(p[c].toFixed(6));
  if (rejected) {
    return { verdict: "not_a_digit", text: names[NOT_A_DIGIT], digit: top, runner_up: null, probability: rounded(NOT_A_DIGIT) };
  }
  if (p[runnerUp] >= f32(f32(verdict.close) * p[top])) {
    return { verdict: "unsure", text: `${names[top]} or ${names[runnerUp]}?`, digit: top, runner_up: runnerUp,
      probability: rounded(top) };
  }
  return { verdict: "digit", text: names[top], digit: top, runner_up: null, probability: rounded(top) };
}

// A probability as a person reads it: never "100%" (no model is certain), never "0%" either.
export function percent(p) {
  const pct = p * 100;
  if (pct >= 99.9) return "over 99.9%";
  if (pct > 0 && pct < 0.1) return "under 0.1%";
  // one decimal where whole percents would round to "100%" or "0%"
  return `${pct < 10 || pct >= 99.5 ? pct.toFixed(1) : pct.toFixed(0)}%`;
}

// What the verdict says, in words: the status line and the confidence line.
export function verdictWords(answer) {
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
