// Any photo or drawing -> the 28x28 white-on-black digit the network reads, in the browser:
// digitnet.vision.imaging step for step, with OpenCV's operations written out (its borders,
// roundings and float32 arithmetic where they change a grey level). docs/static-site.md says
// what differs. An image is a plane {w, h, data}: data is a typed array, row by row.

export const FIELD = 28; // MNIST: the image side
export const DIGIT_BOX = 20; // MNIST: the ink's longer side
export const MAX_PIXELS = 40_000_000;
export const MAX_ASPECT = 60;
const MIN_CONTRAST = 24; // grey levels the ink must stand out by
const SPECK_FRACTION = 0.03; // pieces of ink smaller than this share of the largest are specks
const BLANK = "blank image: no writing stands out from the background; photograph the digit darker or closer";

export class ImageError extends Error {
  constructor(message, kind) {
    super(message);
    this.kind = kind; // as digitnet.vision.imaging.ImageError: "blank", "too_large", ...
  }
}

const f32 = Math.fround;

function plane(w, h, Type) {
  return { w, h, data: new Type(w * h) };
}

// Python's round(): halves go to the even neighbour (OpenCV's cvRound does the same).
function roundEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function clamp(i, n) {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

// numpy.percentile's default ("linear") on an ascending array.
function percentileSorted(sorted, q) {
  const at = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

// np.median of values that are whole or half grey levels in [-510, 510], by counting them.
function medianOfHalves(values) {
  const count = new Int32Array(2041);
  for (let i = 0; i < values.length; i++) count[Math.round(2 * values[i]) + 1020]++;
  const nth = (k) => {
    for (let v = 0, seen = 0; v < 2041; v++) if ((seen += count[v]) > k) return (v - 1020) / 2;
    return 510;
  };
  const n = values.length;
  return n % 2 ? nth((n - 1) / 2) : (nth(n / 2 - 1) + nth(n / 2)) / 2;
}

// np.median of uint8 values given as a 256-bin histogram with n entries.
function histogramMedian(hist, n) {
  const at = (k) => {
    let seen = 0;
    for (let v = 0; v < 256; v++) {
      seen += hist[v];
      if (seen > k) return v;
    }
    return 255;
  };
  return n % 2 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2;
}

// ---- decoded pixels -> gray ---------------------------------------------------------------

// RGBA bytes -> uint8 gray as OpenCV's BGR2GRAY (fixed point), transparent pixels flattened
// onto white paper, or onto black when white leaves no contrast (a light drawing): to_gray.
export function toGray(rgba, w, h) {
  const n = w * h;
  const gray = plane(w, h, Uint8Array);
  let opaque = true;
  for (let i = 0; i < n; i++) {
    const p = 4 * i;
    gray.data[i] = (rgba[p] * 4899 + rgba[p + 1] * 9617 + rgba[p + 2] * 1868 + 8192) >> 14;
    if (rgba[p + 3] !== 255) opaque = false;
  }
  if (opaque) return gray;
  const onWhite = new Float32Array(n);
  const onBlack = new Float32Array(n);
  let wLo = Infinity, wHi = -Infinity, aLo = Infinity, aHi = -Infinity;
  for (let i = 0; i < n; i++) {
    const alpha = f32(rgba[4 * i + 3] / 255);
    onBlack[i] = f32(gray.data[i] * alpha);
    onWhite[i] = f32(onBlack[i] + f32(255 * f32(1 - alpha)));
    wLo = Math.min(wLo, onWhite[i]);
    wHi = Math.max(wHi, onWhite[i]);
    aLo = Math.min(aLo, alpha);
    aHi = Math.max(aHi, alpha);
  }
  const flat = wHi - wLo < MIN_CONTRAST && f32(aHi - aLo) >= f32(MIN_CONTRAST / 255) ? onBlack : onWhite;
  for (let i = 0; i < n; i++) gray.data[i] = roundEven(flat[i]);
  return gray;
}

// ---- resizing, as cv2.resize ---------------------------------------------------------------

// OpenCV's INTER_AREA weights along one axis: which source pixels cover each output pixel,
// as taps: output d takes source[at[t]] * weight[t] for t from start[d] to start[d + 1].
function areaTable(ssize, dsize) {
  const scale = 1 / (dsize / ssize);
  const at = [], weight = [], start = [0];
  for (let d = 0; d < dsize; d++) {
    const f1 = d * scale, f2 = f1 + scale;
    const cell = Math.min(scale, ssize - f1);
    const s2 = Math.min(Math.floor(f2), ssize - 1);
    const s1 = Math.min(Math.ceil(f1), s2);
    const tap = (s, w) => {
      at.push(s);
      weight.push(f32(w));
    };
    if (s1 - f1 > 1e-3) tap(s1 - 1, (s1 - f1) / cell);
    for (let s = s1; s < s2; s++) tap(s, 1 / cell);
    if (f2 - s2 > 1e-3) tap(s2, Math.min(Math.min(f2 - s2, 1), cell) / cell);
    start.push(at.length);
  }
  return { at: Int32Array.from(at), weight: Float64Array.from(weight), start: Int32Array.from(start) };
}

// Shrinking with INTER_AREA (area averaging). uint8 results are rounded; OpenCV's exact halving
// of uint8 rounds halves up, everything else to even.
function resizeArea(src, dw, dh, Type) {
  const { w, h, data } = src;
  if (dw === w && dh === h) return { w, h, data: Type.from(data) };
  const out = plane(dw, dh, Type);
  if (Type === Uint8Array && w === 2 * dw && h === 2 * dh) {
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        const i = 2 * y * w + 2 * x;
        out.data[y * dw + x] = (data[i] + data[i + 1] + data[i + w] + data[i + w + 1] + 2) >> 2;
      }
    }
    return out;
  }
  const xs = areaTable(w, dw), ys = areaTable(h, dh);
  const rows = new Float64Array(h * dw); // each source row shrunk horizontally
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < dw; x++) {
      let sum = 0;
      for (let t = xs.start[x]; t < xs.start[x + 1]; t++) sum += data[y * w + xs.at[t]] * xs.weight[t];
      rows[y * dw + x] = sum;
    }
  }
  const sums = new Float64Array(dw);
  for (let y = 0; y < dh; y++) {
    sums.fill(0);
    for (let t = ys.start[y]; t < ys.start[y + 1]; t++) {
      const o = ys.at[t] * dw, a = ys.weight[t];
      for (let x = 0; x < dw; x++) sums[x] += rows[o + x] * a;
    }
    for (let x = 0; x < dw; x++) {
      out.data[y * dw + x] = Type === Uint8Array ? Math.min(255, Math.max(0, roundEven(sums[x]))) : sums[x];
    }
  }
  return out;
}

// OpenCV's source position and weights for output pixel d (half-pixel centres).
function linearTaps(ssize, dsize) {
  const scale = ssize / dsize;
  const taps = [];
  for (let d = 0; d < dsize; d++) {
    let f = f32((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f -= s;
    if (s < 0) [s, f] = [0, 0];
    if (s >= ssize - 1) [s, f] = [ssize - 1, 0];
    taps.push([s, Math.min(s + 1, ssize - 1), 1 - f, f]);
  }
  return taps;
}

// Growing a float image with INTER_LINEAR.
function resizeLinear(src, dw, dh) {
  const { w, h, data } = src;
  if (dw === w && dh === h) return { w, h, data: Float32Array.from(data) };
  const xs = linearTaps(w, dw), ys = linearTaps(h, dh);
  const rows = new Float32Array(h * dw);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < dw; x++) {
      const [s0, s1, a0, a1] = xs[x];
      rows[y * dw + x] = data[y * w + s0] * a0 + data[y * w + s1] * a1;
    }
  }
  const out = plane(dw, dh, Float32Array);
  for (let y = 0; y < dh; y++) {
    const [s0, s1, b0, b1] = ys[y];
    for (let x = 0; x < dw; x++) out.data[y * dw + x] = rows[s0 * dw + x] * b0 + rows[s1 * dw + x] * b1;
  }
  return out;
}

function cubicWeights(x) {
  const A = -0.75;
  const c0 = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  const c1 = ((A + 2) * x - (A + 3)) * x * x + 1;
  const c2 = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  return [c0, c1, c2, 1 - c0 - c1 - c2];
}

// Growing a float image with INTER_CUBIC (edges replicated, as OpenCV does).
function resizeCubic(src, dw, dh) {
  const { w, h, data } = src;
  if (dw === w && dh === h) return { w, h, data: Float32Array.from(data) };
  const taps = (ssize, dsize) => Array.from({ length: dsize }, (_, d) => {
    const f = f32((d + 0.5) * (ssize / dsize) - 0.5);
    const s = Math.floor(f);
    return [[-1, 0, 1, 2].map((k) => clamp(s + k, ssize)), cubicWeights(f - s)];
  });
  const xs = taps(w, dw), ys = taps(h, dh);
  const rows = new Float32Array(h * dw);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < dw; x++) {
      const [idx, wt] = xs[x];
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += data[y * w + idx[k]] * wt[k];
      rows[y * dw + x] = sum;
    }
  }
  const out = plane(dw, dh, Float32Array);
  for (let y = 0; y < dh; y++) {
    const [idx, wt] = ys[y];
    for (let x = 0; x < dw; x++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += rows[idx[k] * dw + x] * wt[k];
      out.data[y * dw + x] = sum;
    }
  }
  return out;
}

// _small: a copy at most `side` px long; light and paper vary slowly.
function small(gray, side) {
  const scale = Math.min(1, side / Math.max(gray.w, gray.h));
  return resizeArea(gray, Math.max(1, roundEven(gray.w * scale)), Math.max(1, roundEven(gray.h * scale)),
    Uint8Array);
}

// ---- filters --------------------------------------------------------------------------------

// cv2.medianBlur (edges replicated) for small windows: a sliding histogram per row (Huang).
function medianSmall(src, k) {
  const { w, h, data } = src;
  const r = k >> 1, half = (k * k) >> 1;
  const out = plane(w, h, Uint8Array);
  const hist = new Int32Array(256);
  const rows = new Int32Array(k);
  for (let y = 0; y < h; y++) {
    for (let j = 0; j < k; j++) rows[j] = clamp(y + j - r, h) * w;
    hist.fill(0);
    for (let j = 0; j < k; j++) for (let i = -r; i <= r; i++) hist[data[rows[j] + clamp(i, w)]]++;
    let m = 0, below = 0;
    while (below + hist[m] <= half) below += hist[m++];
    out.data[y * w] = m;
    for (let x = 1; x < w; x++) {
      const gone = clamp(x - r - 1, w), come = clamp(x + r, w);
      if (gone !== come) {
        for (let j = 0; j < k; j++) {
          const a = data[rows[j] + gone], b = data[rows[j] + come];
          hist[a]--;
          hist[b]++;
          below += (b < m) - (a < m);
        }
        while (below > half) below -= hist[--m];
        while (below + hist[m] <= half) below += hist[m++];
      }
      out.data[y * w + x] = m;
    }
  }
  return out;
}

// cv2.medianBlur for windows as large as the picture: column histograms in 16 coarse and 256
// fine bins, fine bins brought up to date only where the median falls (Perreault and Hébert).
function medianLarge(src, k) {
  const { w, h, data } = src;
  const r = k >> 1, half = (k * k) >> 1;
  const fine = new Int32Array(w * 256), coarse = new Int32Array(w * 16);
  const add = (x, v, n) => {
    fine[x * 256 + v] += n;
    coarse[x * 16 + (v >> 4)] += n;
  };
  for (let j = -r; j <= r; j++) for (let x = 0; x < w; x++) add(x, data[clamp(j, h) * w + x], 1);
  const out = plane(w, h, Uint8Array);
  const kc = new Int32Array(16), kf = new Int32Array(256), at = new Int32Array(16);
  for (let y = 0; y < h; y++) {
    if (y > 0) {
      const gone = clamp(y - r - 1, h) * w, come = clamp(y + r, h) * w;
      if (gone !== come) {
        for (let x = 0; x < w; x++) {
          add(x, data[gone + x], -1);
          add(x, data[come + x], 1);
        }
      }
    }
    kc.fill(0);
    for (let c = -r; c <= r; c++) for (let b = 0, o = clamp(c, w) * 16; b < 16; b++) kc[b] += coarse[o + b];
    at.fill(-1 << 30); // the window each fine bin was last brought to
    for (let x = 0; x < w; x++) {
      if (x > 0) {
        const gone = clamp(x - r - 1, w) * 16, come = clamp(x + r, w) * 16;
        if (gone !== come) for (let b = 0; b < 16; b++) kc[b] += coarse[come + b] - coarse[gone + b];
      }
      let b = 0, below = 0;
      while (below + kc[b] <= half) below += kc[b++];
      const f0 = b * 16;
      if (2 * (x - at[b]) > k) {
        kf.fill(0, f0, f0 + 16);
        for (let c = x - r; c <= x + r; c++) {
          const o = clamp(c, w) * 256 + f0;
          for (let i = 0; i < 16; i++) kf[f0 + i] += fine[o + i];
        }
      } else {
        for (let xx = at[b] + 1; xx <= x; xx++) {
          const gone = clamp(xx - r - 1, w) * 256 + f0, come = clamp(xx + r, w) * 256 + f0;
          if (gone !== come) for (let i = 0; i < 16; i++) kf[f0 + i] += fine[come + i] - fine[gone + i];
        }
      }
      at[b] = x;
      let v = f0;
      while (below + kf[v] <= half) below += kf[v++];
      out.data[y * w + x] = v;
    }
  }
  return out;
}

function medianBlur(src, k) {
  return k <= 15 ? medianSmall(src, k) : medianLarge(src, k);
}

// Minimum (or maximum) along lines of n values, over windows [i - a, i - a + k - 1]; values
// outside the line do not take part. Van Herk / Gil-Werman: running extrema within blocks of k,
// from the left and from the right, then two of them per window, whatever k is.
function lineExtremum(src, out, n, lines, lineStep, step, k, a, max) {
  const neutral = max ? -Infinity : Infinity;
  const size = n + k - 1, blocks = Math.ceil(size / k) * k;
  const line = new Float64Array(blocks).fill(neutral), g = new Float64Array(blocks), r = new Float64Array(blocks);
  for (let l = 0; l < lines; l++) {
    const base = l * lineStep;
    for (let i = 0; i < n; i++) line[a + i] = src[base + i * step];
    for (let b = 0; b < blocks; b += k) {
      g[b] = line[b];
      for (let i = b + 1; i < b + k; i++) g[i] = max ? Math.max(g[i - 1], line[i]) : Math.min(g[i - 1], line[i]);
      r[b + k - 1] = line[b + k - 1];
      for (let i = b + k - 2; i >= b; i--) r[i] = max ? Math.max(r[i + 1], line[i]) : Math.min(r[i + 1], line[i]);
    }
    for (let i = 0; i < n; i++) {
      out[base + i * step] = max ? Math.max(r[i], g[i + k - 1]) : Math.min(r[i], g[i + k - 1]);
    }
  }
}

// cv2.erode / cv2.dilate with a kw x kh rectangle, anchored at its centre (rounded down) as
// OpenCV does; pixels outside the picture do not take part.
function extremum(src, kw, kh, max) {
  const { w, h, data } = src;
  const along = (k) => (k > 7 ? lineExtremum : lineExtremumSmall);
  const rows = new data.constructor(w * h);
  along(kw)(data, rows, w, h, w, 1, kw, kw >> 1, max);
  const out = { w, h, data: new data.constructor(w * h) };
  along(kh)(rows, out.data, h, w, 1, w, kh, kh >> 1, max);
  return out;
}

// lineExtremum for windows of a few pixels: directly.
function lineExtremumSmall(src, out, n, lines, lineStep, step, k, a, max) {
  for (let l = 0; l < lines; l++) {
    const base = l * lineStep;
    for (let i = 0; i < n; i++) {
      const lo = Math.max(0, i - a), hi = Math.min(n - 1, i - a + k - 1);
      let v = src[base + lo * step];
      if (max) {
        for (let j = base + (lo + 1) * step, end = base + hi * step; j <= end; j += step) if (src[j] > v) v = src[j];
      } else {
        for (let j = base + (lo + 1) * step, end = base + hi * step; j <= end; j += step) if (src[j] < v) v = src[j];
      }
      out[base + i * step] = v;
    }
  }
}

const erode = (src, kw, kh = kw) => extremum(src, kw, kh, false);
const dilate = (src, kw, kh = kw) => extremum(src, kw, kh, true);

// cv2.dilate of a 0/1 mask by a symmetric element given as offsets [dx, dy] from its centre:
// each set pixel sets its neighbours (a mask is mostly empty, so this is the quick way).
function dilateMask(mask, element) {
  const { w, h, data } = mask;
  const out = plane(w, h, Uint8Array);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!data[y * w + x]) continue;
      for (const [dx, dy] of element) {
        const u = x + dx, v = y + dy;
        if (u >= 0 && u < w && v >= 0 && v < h) out.data[v * w + u] = 1;
      }
    }
  }
  return out;
}

const offsets = (rows) => rows.flatMap((row, y) => [...row].flatMap((c, x) => (c === "1" ? [[x - 2, y - 2]] : [])));
const SQUARE3 = offsets(["00000", "01110", "01110", "01110", "00000"]);
const ELLIPSE5 = offsets(["00100", "11111", "11111", "11111", "00100"]); // getStructuringElement(MORPH_ELLIPSE, (5, 5))

// cv2.GaussianBlur of float64 images, zero outside (BORDER_CONSTANT), with the kernel OpenCV
// makes for the sigma. `data` holds 9 images interleaved (the moments of localLinear), blurred
// in one pass: each kernel weight is read once for all nine.
function gaussianBlur9(w, h, data, sigma) {
  const size = roundEven(sigma * 8 + 1) | 1;
  const c = (size - 1) / 2;
  const kernel = new Float64Array(size);
  let total = 0;
  for (let i = 0; i < size; i++) total += (kernel[i] = Math.exp((-0.5 / (sigma * sigma)) * (i - c) ** 2));
  for (let i = 0; i < size; i++) kernel[i] /= total;
  const pass = (src, n, lines, lineStep, step) => { // along `lines` lines of n pixels
    const out = new Float64Array(src.length);
    for (let line = 0; line < lines; line++) {
      const base = line * lineStep;
      for (let x = 0; x < n; x++) {
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0;
        for (let i = Math.max(0, x - c), end = Math.min(n - 1, x + c); i <= end; i++) {
          const k = kernel[i - x + c], o = 9 * (base + i * step);
          a0 += src[o] * k;
          a1 += src[o + 1] * k;
          a2 += src[o + 2] * k;
          a3 += src[o + 3] * k;
          a4 += src[o + 4] * k;
          a5 += src[o + 5] * k;
          a6 += src[o + 6] * k;
          a7 += src[o + 7] * k;
          a8 += src[o + 8] * k;
        }
        const o = 9 * (base + x * step);
        out[o] = a0;
        out[o + 1] = a1;
        out[o + 2] = a2;
        out[o + 3] = a3;
        out[o + 4] = a4;
        out[o + 5] = a5;
        out[o + 6] = a6;
        out[o + 7] = a7;
        out[o + 8] = a8;
      }
    }
    return out;
  };
  return pass(pass(data, w, h, w, 1), h, w, 1, w);
}

// ---- from any image to white ink on black ----------------------------------------------------

// is_dark_on_light: the ink is whichever side of the local paper (a median over a window as
// wide as the picture) reaches further, measured by the extreme 0.1% on each side.
export function isDarkOnLight(gray) {
  const s = small(gray, 256);
  const k = Math.max(3, Math.min(s.w, s.h) - 1) | 1;
  const paper = medianBlur(s, k);
  const count = new Int32Array(511); // diff + 255
  for (let i = 0; i < s.data.length; i++) count[s.data[i] - paper.data[i] + 255]++;
  const n = s.data.length;
  const nth = (i) => { // the i-th smallest difference
    for (let v = 0, seen = 0; v < 511; v++) if ((seen += count[v]) > i) return v - 255;
    return 255;
  };
  const quantile = (q) => {
    const at = (q / 100) * (n - 1), lo = Math.floor(at);
    const a = nth(lo), b = nth(Math.min(lo + 1, n - 1));
    return f32(a + (b - a) * (at - lo));
  };
  const low = quantile(0.1), high = quantile(99.9);
  let darkSum = 0, darkN = 0, lightSum = 0, lightN = 0;
  for (let v = 0; v < 511; v++) {
    const d = v - 255;
    if (d <= low) [darkSum, darkN] = [darkSum - d * count[v], darkN + count[v]];
    if (d >= high) [lightSum, lightN] = [lightSum + d * count[v], lightN + count[v]];
  }
  return darkSum / darkN > lightSum / lightN;
}

// local_linear: Gaussian-weighted local linear fit of `values` where `weight` > 0: at each pixel
// the a + b*dx + c*dy that best fits the weighted neighbours.
function localLinear(values, weight, sigma) {
  const { w, h } = values;
  const n = w * h, f = values.data;
  const out = plane(w, h, Float64Array);
  // all known values zero (a clean drawing's paper): so is the fit, no need to compute it
  if (f.every((v, i) => v === 0 || weight.data[i] === 0)) return out;
  // the moments of the weights and data, 9 images blurred together
  const moments = new Float64Array(9 * n);
  for (let i = 0; i < n; i++) {
    const wt = weight.data[i];
    if (!wt) continue;
    const x = ((i % w) - w / 2) / sigma, y = (Math.floor(i / w) - h / 2) / sigma, o = 9 * i;
    moments[o] = wt;
    moments[o + 1] = wt * x;
    moments[o + 2] = wt * y;
    moments[o + 3] = wt * x * x;
    moments[o + 4] = wt * x * y;
    moments[o + 5] = wt * y * y;
    moments[o + 6] = wt * f[i];
    moments[o + 7] = wt * f[i] * x;
    moments[o + 8] = wt * f[i] * y;
  }
  const m = gaussianBlur9(w, h, moments, sigma);
  for (let i = 0; i < n; i++) {
    const x = ((i % w) - w / 2) / sigma, y = (Math.floor(i / w) - h / 2) / sigma;
    const o = 9 * i;
    const s0 = m[o], sx = m[o + 1], sy = m[o + 2], sxx = m[o + 3], sxy = m[o + 4], syy = m[o + 5];
    const f0 = m[o + 6], fx = m[o + 7], fy = m[o + 8];
    const ridge = 1e-3 * (s0 + 1e-9); // slopes fall back towards zero where data is scarce
    // about this pixel: [[a b c] [b d e] [c e g]] (intercept, slopes) = [r0 r1 r2]
    const a = s0 + 1e-9, b = sx - x * s0, c = sy - y * s0;
    const d = sxx - 2 * x * sx + x * x * s0 + ridge;
    const e = sxy - x * sy - y * sx + x * y * s0;
    const g = syy - 2 * y * sy + y * y * s0 + ridge;
    const r0 = f0, r1 = fx - x * f0, r2 = fy - y * f0;
    // the intercept, by Cramer's rule
    const det = a * (d * g - e * e) - b * (b * g - e * c) + c * (b * e - d * c);
    out.data[i] = (r0 * (d * g - e * e) - b * (r1 * g - e * r2) + c * (r1 * e - d * r2)) / det;
  }
  return out;
}

// background: the (white-on-black) picture without its ink, the paper under uneven light.
function background(ink) {
  const s = small(ink, 128);
  const sf = { w: s.w, h: s.h, data: Float32Array.from(s.data) };
  const k = Math.max(3, roundEven(0.3 * Math.min(s.w, s.h)));
  const opened = dilate(erode(sf, k), k);
  const rise = sf.data.map((v, i) => v - opened.data[i]); // whole grey levels
  const mid = medianOfHalves(rise);
  const noise = 1.4826 * medianOfHalves(rise.map((v) => Math.abs(v - mid)));
  const limit = f32(Math.max(8, 3 * noise));
  const known = plane(s.w, s.h, Uint8Array);
  for (let i = 0; i < rise.length; i++) known.data[i] = rise[i] <= limit ? 1 : 0;
  const paper = erode(known, 3); // clear of the strokes' soft edges
  let paperPixels = 0;
  for (let i = 0; i < rise.length; i++) paperPixels += paper.data[i];
  const estimate = paperPixels < 0.05 * paper.data.length ? opened
    : { w: s.w, h: s.h, data: Float32Array.from(localLinear(sf, paper, Math.max(1.5, k / 2)).data) };
  const shade = plane(ink.w, ink.h, Uint8Array);
  if (estimate.data.every((v) => v === 0)) return shade; // a clean drawing's paper
  const full = resizeLinear(estimate, ink.w, ink.h).data;
  for (let i = 0; i < full.length; i++) shade.data[i] = Math.min(255, Math.max(0, full[i]));
  return shade;
}

// to_white_on_black: uint8 gray -> white ink on black, paper and uneven light removed. A drawing
// on the page's canvas is known to be dark ink on white, so its polarity may be given.
export function toWhiteOnBlack(gray, darkOnLight = isDarkOnLight(gray)) {
  const n = gray.data.length;
  if (!darkOnLight) {
    const bg = background(gray);
    return { w: gray.w, h: gray.h, data: gray.data.map((v, i) => Math.max(0, v - bg.data[i])) };
  }
  const inverted = { w: gray.w, h: gray.h, data: gray.data.map((v) => 255 - v) };
  const shade = background(inverted); // how far below white the paper is
  const ink = plane(gray.w, gray.h, Uint8Array);
  for (let i = 0; i < n; i++) {
    // ink relative to the local paper, so a pen gives the same grey in light and in shadow
    const gain = f32(255 / Math.max(255 - shade.data[i], 16));
    const v = f32(f32(Math.max(0, inverted.data[i] - shade.data[i]) * gain) + 0.5);
    ink.data[i] = Math.min(255, Math.floor(v));
  }
  return ink;
}

// ---- the ink ----------------------------------------------------------------------------------

function denoise(ink) {
  return medianBlur(ink, Math.max(ink.w, ink.h) <= 500 ? 3 : 5);
}

// OpenCV's Otsu threshold of uint8 values given as a histogram.
function otsu(hist) {
  let total = 0, mu = 0;
  for (let i = 0; i < 256; i++) {
    total += hist[i];
    mu += i * hist[i];
  }
  const scale = 1 / total;
  mu *= scale;
  let mu1 = 0, q1 = 0, best = 0, threshold = 0;
  const eps = 1.1920928955078125e-7; // FLT_EPSILON
  for (let i = 0; i < 256; i++) {
    const p = hist[i] * scale;
    mu1 *= q1;
    q1 += p;
    const q2 = 1 - q1;
    if (Math.min(q1, q2) < eps || Math.max(q1, q2) > 1 - eps) continue;
    mu1 = (mu1 + i * p) / q1;
    const mu2 = (mu - q1 * mu1) / q2;
    const sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > best) [best, threshold] = [sigma, i];
  }
  return threshold;
}

// ink_threshold: Otsu's threshold over the pixels along strong edges (3x3 Sobel, edges reflected).
function inkThreshold(smooth) {
  const { w, h, data } = smooth;
  const reflect = (i, n) => (n === 1 ? 0 : i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  const grad = new Float32Array(w * h);
  let top = 0;
  for (let y = 0; y < h; y++) {
    const up = reflect(y - 1, h) * w, mid = y * w, down = reflect(y + 1, h) * w;
    for (let x = 0; x < w; x++) {
      const l = reflect(x - 1, w), r = reflect(x + 1, w);
      const gx = data[up + r] + 2 * data[mid + r] + data[down + r] - data[up + l] - 2 * data[mid + l] - data[down + l];
      const gy = data[down + l] + 2 * data[down + x] + data[down + r] - data[up + l] - 2 * data[up + x] - data[up + r];
      const g = f32(Math.sqrt(gx * gx + gy * gy));
      grad[mid + x] = g;
      if (g > top) top = g;
    }
  }
  const limit = f32(f32(0.3) * top);
  const strong = plane(w, h, Uint8Array);
  for (let i = 0; i < w * h; i++) strong.data[i] = grad[i] >= limit ? 1 : 0;
  const edges = dilateMask(strong, SQUARE3);
  const hist = new Int32Array(256);
  for (let i = 0; i < w * h; i++) if (edges.data[i]) hist[data[i]]++;
  return otsu(hist);
}

// cv2.connectedComponentsWithStats, 8-connected: labels numbered in the order their first pixel
// comes in reading order; stats per label [x, y, w, h, area].
function components(mask) {
  const { w, h, data } = mask;
  const parent = [0];
  const find = (a) => {
    while (parent[a] !== a) a = parent[a] = parent[parent[a]];
    return a;
  };
  const labels = new Int32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!data[i]) continue;
      let label = 0;
      for (let k = 0; k < 4; k++) { // the neighbours already labelled: left, and the row above
        const other = k === 0 ? (x > 0 ? labels[i - 1] : 0)
          : y > 0 && x + k - 2 >= 0 && x + k - 2 < w ? labels[i - w + k - 2] : 0;
        if (!other) continue;
        const b = find(other);
        if (!label) label = b;
        else if (b !== label) {
          parent[Math.max(label, b)] = Math.min(label, b);
          label = Math.min(label, b);
        }
      }
      if (!label) parent.push((label = parent.length));
      labels[i] = label;
    }
  }
  const renumber = new Int32Array(parent.length);
  const stats = [null];
  for (let i = 0; i < w * h; i++) {
    if (!labels[i]) continue;
    const root = find(labels[i]);
    if (!renumber[root]) {
      renumber[root] = stats.length;
      stats.push([w, h, -1, -1, 0]); // x0, y0, x1, y1, area until the end
    }
    const label = (labels[i] = renumber[root]);
    const s = stats[label], x = i % w, y = (i - x) / w;
    s[0] = Math.min(s[0], x);
    s[1] = Math.min(s[1], y);
    s[2] = Math.max(s[2], x);
    s[3] = Math.max(s[3], y);
    s[4]++;
  }
  for (const s of stats.slice(1)) [s[2], s[3]] = [s[2] - s[0] + 1, s[3] - s[1] + 1];
  return { count: stats.length, labels, stats };
}

function blank(message = BLANK) {
  return new ImageError(message, "blank");
}

// ink_mask: the ink by Otsu's threshold on the denoised picture, specks dropped; also returns
// the denoised picture.
export function inkMask(ink) {
  const smooth = denoise(ink);
  const n = smooth.data.length;
  let lo = 255, hi = 0;
  for (let i = 0; i < n; i++) {
    const v = smooth.data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (hi - lo < MIN_CONTRAST) throw blank();
  const threshold = inkThreshold(smooth);
  const fg = new Int32Array(256), bg = new Int32Array(256);
  let nf = 0;
  const mask = plane(ink.w, ink.h, Uint8Array);
  for (let i = 0; i < n; i++) {
    const v = smooth.data[i];
    if (v > threshold) {
      mask.data[i] = 1;
      fg[v]++;
      nf++;
    } else bg[v]++;
  }
  const nb = n - nf;
  if (!nf || !nb || histogramMedian(fg, nf) - histogramMedian(bg, nb) < MIN_CONTRAST) throw blank();
  const { labels, stats } = components(mask);
  const largest = Math.max(...stats.slice(1).map((s) => s[4]));
  const keep = stats.map((s) => s !== null && s[4] >= Math.max(2, SPECK_FRACTION * largest));
  for (let i = 0; i < labels.length; i++) mask.data[i] = keep[labels[i]] ? 1 : 0;
  return { mask, smooth };
}

// main_cluster: the largest piece of ink and the pieces near it (within a quarter of the
// cluster's size of its box), grown until nothing more joins.
export function mainCluster(mask) {
  const { count, labels, stats } = components(mask);
  if (count <= 2) return mask;
  const boxes = stats.slice(1);
  const inside = boxes.map(() => false);
  let largest = 0;
  boxes.forEach((b, i) => { if (b[4] > boxes[largest][4]) largest = i; });
  inside[largest] = true;
  for (let changed = true; changed;) {
    const members = boxes.filter((_, i) => inside[i]);
    const x0 = Math.min(...members.map((b) => b[0])), y0 = Math.min(...members.map((b) => b[1]));
    const x1 = Math.max(...members.map((b) => b[0] + b[2])), y1 = Math.max(...members.map((b) => b[1] + b[3]));
    const reach = Math.max(x1 - x0, y1 - y0) / 4;
    changed = false;
    boxes.forEach((b, i) => {
      const gapX = Math.max(0, x0 - (b[0] + b[2]), b[0] - x1), gapY = Math.max(0, y0 - (b[1] + b[3]), b[1] - y1);
      if (!inside[i] && Math.max(gapX, gapY) <= reach) inside[i] = changed = true;
    });
  }
  return { w: mask.w, h: mask.h, data: Uint8Array.from(labels, (l) => (l && inside[l - 1] ? 1 : 0)) };
}

// ---- the 28x28 digit --------------------------------------------------------------------------

// fit_box: the cropped ink's longer side to 20 px, aspect kept, then stretched so that the 60th
// percentile of the ink is white, as about 40% of MNIST's ink pixels are.
function fitBox(crop) {
  const scale = DIGIT_BOX / Math.max(crop.w, crop.h);
  const dw = Math.max(1, roundEven(crop.w * scale)), dh = Math.max(1, roundEven(crop.h * scale));
  const shrunk = scale < 1 ? resizeArea(crop, dw, dh, Float32Array) : resizeCubic(crop, dw, dh);
  const values = shrunk.data.map((v) => Math.max(0, v));
  const top = Math.max(...values);
  const floor = f32(f32(0.1) * top);
  const ink = top > 0 ? values.filter((v) => v > floor) : values;
  const level = ink.length ? f32(percentileSorted(Float64Array.from(ink).sort(), 60)) : 0;
  if (level <= 0) throw blank("blank image: no ink left after scaling");
  const gain = f32(255 / level);
  return { w: dw, h: dh, data: Uint8Array.from(values, (v) => roundEven(Math.min(255, f32(v * gain)))) };
}

// centre_in_field: into the middle of a 28x28 field, then shifted (by whole pixels) so that the
// centre of mass is at (14, 14).
function centreInField(digit) {
  const field = new Uint8Array(FIELD * FIELD);
  const top = (FIELD - digit.h) >> 1, left = (FIELD - digit.w) >> 1;
  let m00 = 0, m10 = 0, m01 = 0;
  for (let y = 0; y < digit.h; y++) {
    for (let x = 0; x < digit.w; x++) {
      const v = digit.data[y * digit.w + x];
      field[(top + y) * FIELD + left + x] = v;
      m00 += v;
      m10 += v * (left + x);
      m01 += v * (top + y);
    }
  }
  if (m00 <= 0) throw blank("blank image: no ink left after scaling");
  const dx = roundEven(FIELD / 2 - m10 / m00), dy = roundEven(FIELD / 2 - m01 / m00);
  const out = new Uint8Array(FIELD * FIELD);
  for (let y = 0; y < FIELD; y++) {
    for (let x = 0; x < FIELD; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < FIELD && sy >= 0 && sy < FIELD) out[y * FIELD + x] = field[sy * FIELD + sx];
    }
  }
  return out;
}

// mnist_from_ink: the denoised ink inside the mask grown by a stroke edge (Otsu's mask cuts
// through the strokes' grey edges, which MNIST has), cropped, fitted and centred.
export function mnistFromInk(smooth, mask) {
  const grown = dilateMask(mask, ELLIPSE5);
  const { w, h } = smooth;
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  const clean = smooth.data.map((v, i) => (grown.data[i] ? v : 0));
  clean.forEach((v, i) => {
    if (!v) return;
    const x = i % w, y = (i - x) / w;
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  });
  if (x1 < 0) throw blank("blank image: no writing found; photograph the digit darker or closer");
  const crop = plane(x1 - x0 + 1, y1 - y0 + 1, Float32Array);
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) crop.data[(y - y0) * crop.w + x - x0] = clean[y * w + x];
  return centreInField(fitBox(crop));
}

// Refuse what decode refuses by its size alone.
export function checkSize(w, h) {
  if (w * h > MAX_PIXELS) {
    throw new ImageError(`image too large (${w}x${h} = ${(w * h / 1e6).toFixed(1)} megapixels); the limit is ` +
      `${MAX_PIXELS / 1e6} megapixels, scale it down first`, "too_large");
  }
  if (Math.max(w, h) > MAX_ASPECT * Math.max(1, Math.min(w, h))) {
    throw new ImageError(`image is ${w}x${h} pixels, more than ${MAX_ASPECT} times as long as it is wide; ` +
      "crop it to the writing", "out_of_bounds");
  }
}

// to_mnist: RGBA pixels (an ImageData's data) -> uint8 (28 * 28) digit, white on black.
// `drawing`: the pixels are the page's own canvas holding strokes only, dark ink on white by
// construction, so the polarity is not estimated.
export function toMnist(rgba, w, h, drawing = false) {
  checkSize(w, h);
  const gray = toGray(rgba, w, h);
  const ink = toWhiteOnBlack(gray, drawing || isDarkOnLight(gray));
  const { mask, smooth } = inkMask(ink);
  return mnistFromInk(smooth, mainCluster(mask));
}
