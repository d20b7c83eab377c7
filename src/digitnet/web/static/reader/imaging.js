// Any photo or drawing -> the 28x28 white-on-black digit the network reads, in the browser: the
// algorithm of digitnet.vision.imaging and digitnet.vision.paper (PREPROCESS_VERSION), step for
// step and to the byte. Every grey level is computed with whole numbers (block sums, minima and
// maxima, medians, counts, least squares by Cramer's rule, in BigInt where products pass 2^53) or
// with one double operation at a time in the order Python uses, so both give the same bytes;
// tests/js checks it on the fixtures scripts/preprocess_fixtures.py writes. An image is a plane
// {w, h, data}: data is a typed array, row by row.

export const PREPROCESS_VERSION = "digitnet-preprocess-3";
export const FIELD = 28; // MNIST: the image side
export const DIGIT_BOX = 20; // MNIST: the ink's longer side
export const MAX_PIXELS = 40_000_000;
export const MAX_ASPECT = 60;
const MIN_CONTRAST = 24; // grey levels the ink must stand out by
const SPECK_PERCENT = 3; // pieces of ink smaller than this share of the largest are specks
const WORK_SIDE = 512; // the digit is found and cleaned on a copy at most this long ...
const ZOOM_BELOW = 64; // ... and looked at again closer when it is shorter than this there
const POLARITY_SIDE = 48; // polarity: a subsample at most this across its shorter side
const PAPER_SIDE = 48; // the paper: a copy at most this across its shorter side
const OPENING_TENTHS = 3; // the opening that tells paper from ink: 0.3 of the copy's short side
const PAPER_RISE = 8; // paper rises above the opening by at most max(8, 3 sigma) ...
const NOISE_MADS = 44478; // ... sigma = 1.4826 MADs: 3 sigma in ten-thousandths of a MAD
const MIN_PAPER_PARTS = 20; // under 1/20 of the copy paper: the opening is the ground
const PAPER_MARGIN = 16; // the plane stays this close to the paper it was fitted to
const RIDGE_PARTS = 1000; // the slopes' ridge: 1/1000 of the paper's count times (k/2)^2
const BLANK = "blank image: no writing stands out from the background; photograph the digit darker or closer";
const NO_WRITING = "blank image: no writing found; photograph the digit darker or closer";
const NO_INK = "blank image: no ink left after scaling";

export class ImageError extends Error {
  constructor(message, kind) {
    super(message);
    this.kind = kind; // as digitnet.vision.imaging.ImageError: "blank", "too_large", ...
  }
}

function plane(w, h, Type) {
  return { w, h, data: new Type(w * h) };
}

function clamp(i, n) {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

// Python's a // b for whole numbers (b > 0), exact while |a| < 2^53.
function floorDiv(a, b) {
  return Math.floor(a / b);
}

function ceilDiv(a, b) {
  return -floorDiv(-a, b);
}

function blank(message = BLANK) {
  return new ImageError(message, "blank");
}

// ---- decoded pixels -> gray ---------------------------------------------------------------

// RGBA bytes -> uint8 gray (luma: 0.299 R + 0.587 G + 0.114 B in 15-bit fixed point), transparent pixels flattened
// onto white paper, or onto black when white leaves no contrast (a light drawing): to_gray.
export function toGray(rgba, w, h) {
  const n = w * h;
  const gray = plane(w, h, Uint8Array);
  let opaque = true;
  for (let i = 0; i < n; i++) {
    const p = 4 * i;
    gray.data[i] = (rgba[p] * 9798 + rgba[p + 1] * 19235 + rgba[p + 2] * 3735 + 16384) >> 15;
    if (rgba[p + 3] !== 255) opaque = false;
  }
  if (opaque) return gray;
  const onWhite = new Int32Array(n);
  let wLo = Infinity, wHi = -Infinity, aLo = Infinity, aHi = -Infinity;
  for (let i = 0; i < n; i++) {
    const alpha = rgba[4 * i + 3];
    onWhite[i] = floorDiv(gray.data[i] * alpha + 255 * (255 - alpha) + 127, 255);
    [wLo, wHi] = [Math.min(wLo, onWhite[i]), Math.max(wHi, onWhite[i])];
    [aLo, aHi] = [Math.min(aLo, alpha), Math.max(aHi, alpha)];
  }
  const onBlack = wHi - wLo < MIN_CONTRAST && aHi - aLo >= MIN_CONTRAST;
  for (let i = 0; i < n; i++) {
    gray.data[i] = onBlack ? floorDiv(gray.data[i] * rgba[4 * i + 3] + 127, 255) : onWhite[i];
  }
  return gray;
}

// ---- copies at other scales ------------------------------------------------------------------

// block_mean: the mean of each f x f block (smaller on the right and bottom edges), rounded half up.
export function blockMean(src, f) {
  if (f === 1) return src;
  const { w, h, data } = src;
  const out = plane(ceilDiv(w, f), ceilDiv(h, f), Uint8Array);
  const sums = new Float64Array(out.w * out.h);
  for (let y = 0; y < h; y++) {
    const row = Math.floor(y / f) * out.w;
    for (let x = 0; x < w; x++) sums[row + Math.floor(x / f)] += data[y * w + x];
  }
  for (let by = 0; by < out.h; by++) {
    for (let bx = 0; bx < out.w; bx++) {
      const count = Math.min(f, h - f * by) * Math.min(f, w - f * bx);
      out.data[by * out.w + bx] = floorDiv(sums[by * out.w + bx] + floorDiv(count, 2), count);
    }
  }
  return out;
}

// _shrink: block_mean by the smallest whole factor that brings the longer (shorter) side to `side`.
function shrink(src, side, shorter = false) {
  const f = Math.max(1, ceilDiv(shorter ? Math.min(src.w, src.h) : Math.max(src.w, src.h), side));
  return [blockMean(src, f), f];
}

// _linear_taps: output i sits at (2i + 1 - f) / 2f pixels of the copy f times smaller.
function linearTaps(size, f, n) {
  const taps = [];
  for (let i = 0; i < size; i++) {
    const at = 2 * i + 1 - f;
    const first = floorDiv(at, 2 * f);
    taps.push([clamp(first, n), clamp(first + 1, n), at - first * 2 * f]);
  }
  return taps;
}

// upsample: bilinear, f times larger, edges replicated, weights in 2f-ths, rounded half up.
export function upsample(small, f, w, h) {
  const out = plane(w, h, Uint8Array);
  if (f === 1) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.data[y * w + x] = small.data[y * small.w + x];
    return out;
  }
  const f2 = 2 * f, ys = linearTaps(h, f, small.h), xs = linearTaps(w, f, small.w);
  const rows = new Float64Array(h * small.w);
  for (let y = 0; y < h; y++) {
    const [a, b, wy] = ys[y];
    for (let x = 0; x < small.w; x++) {
      rows[y * small.w + x] = small.data[a * small.w + x] * (f2 - wy) + small.data[b * small.w + x] * wy;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [a, b, wx] = xs[x];
      const sum = rows[y * small.w + a] * (f2 - wx) + rows[y * small.w + b] * wx;
      out.data[y * w + x] = floorDiv(sum + (f2 * f2) / 2, f2 * f2);
    }
  }
  return out;
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


// ---- from gray to white ink on black ---------------------------------------------------------

// is_dark_on_light: on every n-th pixel, the ink is whichever side of the local paper (a median
// over a window as wide as the short side) reaches further: the sums of the 0.1% most extreme
// differences below and above it; a tie goes to dark ink.
export function isDarkOnLight(gray) {
  const step = ceilDiv(Math.min(gray.w, gray.h), POLARITY_SIDE);
  const s = plane(ceilDiv(gray.w, step), ceilDiv(gray.h, step), Uint8Array);
  for (let y = 0; y < s.h; y++) for (let x = 0; x < s.w; x++) s.data[y * s.w + x] = gray.data[y * step * gray.w + x * step];
  const paper = medianBlur(s, Math.max(3, Math.min(s.w, s.h) - 1) | 1);
  const count = new Float64Array(511); // difference + 255
  for (let i = 0; i < s.data.length; i++) count[s.data[i] - paper.data[i] + 255]++;
  const extreme = ceilDiv(s.data.length, 1000);
  let dark = 0, light = 0;
  for (let v = 0, left = extreme; left > 0; v++) {
    const take = Math.min(left, count[v]);
    dark -= take * (v - 255);
    left -= take;
  }
  for (let v = 510, left = extreme; left > 0; v--) {
    const take = Math.min(left, count[v]);
    light += take * (v - 255);
    left -= take;
  }
  return dark >= light;
}

// _min_filter / _max_filter: the minimum (maximum) over the k x k window clipped to the picture,
// rows then columns.
function windowExtreme(src, k, pick) {
  const { w, h, data } = src, r = k >> 1;
  const rows = new Uint8Array(w * h), out = plane(w, h, Uint8Array);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let v = data[y * w + x];
      for (let i = Math.max(0, x - r), end = Math.min(w - 1, x + r); i <= end; i++) v = pick(v, data[y * w + i]);
      rows[y * w + x] = v;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let v = rows[y * w + x];
      for (let j = Math.max(0, y - r), end = Math.min(h - 1, y + r); j <= end; j++) v = pick(v, rows[j * w + x]);
      out.data[y * w + x] = v;
    }
  }
  return out;
}
const minFilter = (src, k) => windowExtreme(src, k, Math.min);
const maxFilter = (src, k) => windowExtreme(src, k, Math.max);

// _window_sums: the sum of value(i) over the (2r + 1)^2 window clipped to the picture, exactly (an
// integral image; every sum here stays far under 2^53).
function windowSums(w, h, value, r) {
  const table = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += value(y * w + x, x, y);
      table[(y + 1) * (w + 1) + x + 1] = table[y * (w + 1) + x + 1] + row;
    }
  }
  const out = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    const y0 = Math.max(0, y - r) * (w + 1), y1 = Math.min(h, y + r + 1) * (w + 1);
    for (let x = 0; x < w; x++) {
      const x0 = Math.max(0, x - r), x1 = Math.min(w, x + r + 1);
      out[y * w + x] = table[y1 + x1] - table[y0 + x1] - table[y1 + x0] + table[y0 + x0];
    }
  }
  return out;
}

// paper_mask: the grey opening by a k x k square, and 0/1 where the copy is surely paper: no
// more above the opening than max(8, 3 sigma) of the paper's noise, not next to ink.
function paperMask(small, k) {
  const opened = maxFilter(minFilter(small, k), k);
  const n = small.data.length;
  const rise = new Int32Array(n), hist = new Float64Array(256), spread = new Float64Array(256);
  for (let i = 0; i < n; i++) hist[(rise[i] = small.data[i] - opened.data[i])]++;
  const middle = lowerMedian(hist, n);
  for (let i = 0; i < n; i++) spread[Math.abs(rise[i] - middle)]++;
  const limit = Math.max(PAPER_RISE * 10000, NOISE_MADS * lowerMedian(spread, n));
  const paper = plane(small.w, small.h, Uint8Array);
  for (let i = 0; i < n; i++) paper.data[i] = rise[i] * 10000 <= limit ? 1 : 0;
  return [opened, minFilter(paper, 3)];
}

// Python's (2 num + den) // (2 den) for BigInts, den > 0: num / den rounded half up.
function roundedQuotient(num, den) {
  const a = 2n * num + den, b = 2n * den;
  const q = a / b;
  return Number(a % b !== 0n && a < 0n ? q - 1n : q);
}

// _plane_at_each_pixel: least squares a + b dx + c dy to the paper's values in the window of
// radius r around each pixel, the slopes' diagonal given the ridge; a = num / den by Cramer's
// rule (the sums and cofactors are exact doubles, their products BigInt).
function planeAtEachPixel(small, paper, r, ridgeScale) {
  const { w, h } = small, v = small.data, m = paper.data;
  const sum = (f) => windowSums(w, h, f, r);
  const s0 = sum((i) => m[i]), sx = sum((i, x) => m[i] * x), sy = sum((i, x, y) => m[i] * y);
  const sxx = sum((i, x) => m[i] * x * x), sxy = sum((i, x, y) => m[i] * x * y), syy = sum((i, x, y) => m[i] * y * y);
  const f0 = sum((i) => m[i] * v[i]), fx = sum((i, x) => m[i] * v[i] * x), fy = sum((i, x, y) => m[i] * v[i] * y);
  const num = new Array(w * h), den = new Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const ridge = floorDiv(s0[i] * ridgeScale + 2 * RIDGE_PARTS, 4 * RIDGE_PARTS);
      const m01 = sx[i] - x * s0[i], m02 = sy[i] - y * s0[i];
      const m11 = sxx[i] - 2 * x * sx[i] + x * x * s0[i] + ridge;
      const m12 = sxy[i] - x * sy[i] - y * sx[i] + x * y * s0[i];
      const m22 = syy[i] - 2 * y * sy[i] + y * y * s0[i] + ridge;
      const r0 = f0[i], r1 = fx[i] - x * f0[i], r2 = fy[i] - y * f0[i];
      const c00 = m11 * m22 - m12 * m12, c01 = m12 * m02 - m01 * m22, c02 = m01 * m12 - m11 * m02;
      const [C00, C01, C02] = [BigInt(c00), BigInt(c01), BigInt(c02)];
      num[i] = BigInt(r0) * C00 + BigInt(r1) * C01 + BigInt(r2) * C02;
      den[i] = BigInt(s0[i]) * C00 + BigInt(m01) * C01 + BigInt(m02) * C02;
    }
  }
  return [num, den, s0];
}

// ground: the paper's level under every pixel of the copy: a plane fitted to the paper in the
// window twice the opening's width around it, rounded half up, kept within PAPER_MARGIN of the
// paper's own levels there; the opening where there is no paper.
export function ground(small) {
  const k = Math.max(3, floorDiv(OPENING_TENTHS * Math.min(small.w, small.h) + 5, 10)) | 1;
  const [opened, paper] = paperMask(small, k);
  const n = small.data.length;
  let count = 0;
  for (let i = 0; i < n; i++) count += paper.data[i];
  if (MIN_PAPER_PARTS * count < n) return opened;
  const [num, den, s0] = planeAtEachPixel(small, paper, k, k * k);
  const onPaper = (fill) => ({ w: small.w, h: small.h, data: small.data.map((v, i) => (paper.data[i] ? v : fill)) });
  const lo = minFilter(onPaper(255), 2 * k + 1).data, hi = maxFilter(onPaper(0), 2 * k + 1).data;
  const out = plane(small.w, small.h, Uint8Array);
  for (let i = 0; i < n; i++) {
    let fit = den[i] > 0n ? roundedQuotient(num[i], den[i]) : opened.data[i];
    fit = Math.min(Math.max(fit, lo[i] - PAPER_MARGIN), hi[i] + PAPER_MARGIN);
    out.data[i] = Math.min(Math.max(s0[i] > 0 ? fit : opened.data[i], 0), 255);
  }
  return out;
}

// white_on_black: the ground of a copy at most PAPER_SIDE across, brought back bilinearly; dark ink
// is measured relative to the paper under it.
export function whiteOnBlack(gray, dark) {
  const n = gray.data.length;
  const inverted = { w: gray.w, h: gray.h, data: dark ? gray.data.map((v) => 255 - v) : gray.data };
  const [small, f] = shrink(inverted, PAPER_SIDE, true);
  const level = upsample(ground(small), f, gray.w, gray.h).data;
  const ink = plane(gray.w, gray.h, Uint8Array);
  for (let i = 0; i < n; i++) {
    const rise = Math.max(inverted.data[i] - level[i], 0);
    const paper = Math.max(255 - level[i], 16);
    ink.data[i] = dark ? Math.min(floorDiv(rise * 255 + floorDiv(paper, 2), paper), 255) : rise;
  }
  return ink;
}

// ---- the ink ----------------------------------------------------------------------------------

export function denoise(ink) {
  return medianBlur(ink, Math.max(ink.w, ink.h) <= 500 ? 3 : 5);
}

// otsu: Otsu's split of a 256-bin histogram, moved halfway between the classes' means.
function otsu(hist) {
  let total = 0, weight = 0;
  for (let t = 0; t < 256; t++) [total, weight] = [total + hist[t], weight + t * hist[t]];
  let best = 0, split = null, n1 = 0, s1 = 0;
  for (let t = 0; t < 255; t++) {
    [n1, s1] = [n1 + hist[t], s1 + t * hist[t]];
    if (n1 === 0 || n1 === total) continue;
    const d = total * s1 - n1 * weight;
    const between = (d * d) / (n1 * (total - n1));
    if (between > best) [best, split] = [between, [n1, s1]];
  }
  if (split === null) return 0;
  [n1, s1] = split;
  // BigInt: the products pass 2^53 on large pictures
  const num = BigInt(s1) * BigInt(total - n1) + BigInt(weight - s1) * BigInt(n1);
  return Number(num / (2n * BigInt(n1) * BigInt(total - n1)));
}

// ink_threshold: the threshold of the pixels along strong edges (3x3 Sobel, edges reflected:
// squared magnitude at least 0.09 of the largest) and their neighbours.
function inkThreshold(smooth) {
  const { w, h, data } = smooth;
  const reflect = (i, n) => (n === 1 ? 0 : i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  const strength = new Float64Array(w * h);
  let top = 0;
  for (let y = 0; y < h; y++) {
    const up = reflect(y - 1, h) * w, mid = y * w, down = reflect(y + 1, h) * w;
    for (let x = 0; x < w; x++) {
      const l = reflect(x - 1, w), r = reflect(x + 1, w);
      const gx = data[up + r] + 2 * data[mid + r] + data[down + r] - data[up + l] - 2 * data[mid + l] - data[down + l];
      const gy = data[down + l] + 2 * data[down + x] + data[down + r] - data[up + l] - 2 * data[up + x] - data[up + r];
      strength[mid + x] = gx * gx + gy * gy;
      if (strength[mid + x] > top) top = strength[mid + x];
    }
  }
  const strong = plane(w, h, Uint8Array);
  for (let i = 0; i < w * h; i++) strong.data[i] = 100 * strength[i] >= 9 * top ? 1 : 0;
  const edges = dilateMask(strong, SQUARE3);
  const hist = new Float64Array(256);
  for (let i = 0; i < w * h; i++) if (edges.data[i]) hist[data[i]]++;
  return otsu(hist);
}

// The lower median of uint8 values given as a 256-bin histogram with n entries.
function lowerMedian(hist, n) {
  for (let v = 0, seen = 0; v < 256; v++) if ((seen += hist[v]) > (n - 1) >> 1) return v;
  return 255;
}

// ink_mask: the denoised ink above the threshold, specks dropped.
export function inkMask(ink) {
  const smooth = denoise(ink);
  const n = smooth.data.length;
  let lo = 255, hi = 0;
  for (let i = 0; i < n; i++) [lo, hi] = [Math.min(lo, smooth.data[i]), Math.max(hi, smooth.data[i])];
  if (hi - lo < MIN_CONTRAST) throw blank();
  const threshold = inkThreshold(smooth);
  const fg = new Float64Array(256), bg = new Float64Array(256);
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
  if (!nf || nf === n || lowerMedian(fg, nf) - lowerMedian(bg, n - nf) < MIN_CONTRAST) throw blank();
  return withoutSpecks(mask);
}

// without_specks: pieces of at least 2 pixels and SPECK_PERCENT of the largest.
function withoutSpecks(mask) {
  const { labels, stats } = components(mask);
  let largest = 0;
  for (let l = 1; l < stats.length; l++) largest = Math.max(largest, stats[l][4]);
  const keep = stats.map((s) => s !== null && s[4] >= 2 && 100 * s[4] >= SPECK_PERCENT * largest);
  return { w: mask.w, h: mask.h, data: labelsWhere(labels, stats.length, (l) => keep[l]) };
}

// A 0/1 mask of the pixels whose label (below `count`) passes `wanted`, asked once per label:
// a call per pixel made this the slowest step of reading a photo.
function labelsWhere(labels, count, wanted) {
  const table = new Uint8Array(count);
  for (let l = 0; l < count; l++) table[l] = wanted(l) ? 1 : 0;
  const out = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[i] = table[labels[i]];
  return out;
}

// main_cluster: the largest piece of ink (the first in reading order on ties) and the pieces
// near it (within a quarter of the cluster's size of its box), grown until nothing more joins.
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
    const size = Math.max(x1 - x0, y1 - y0);
    changed = false;
    boxes.forEach((b, i) => {
      const gapX = Math.max(0, x0 - (b[0] + b[2]), b[0] - x1), gapY = Math.max(0, y0 - (b[1] + b[3]), b[1] - y1);
      if (!inside[i] && 4 * Math.max(gapX, gapY) <= size) inside[i] = changed = true;
    });
  }
  return { w: mask.w, h: mask.h, data: labelsWhere(labels, stats.length, (l) => l > 0 && inside[l - 1]) };
}

// ---- the 28x28 digit --------------------------------------------------------------------------

// _area_weights: how much of source pixel s output pixel d covers when `size` pixels become `out`
// (fewer), in 1/out source pixels: d spans [d size, (d + 1) size), s spans [s out, (s + 1) out).
function areaWeights(size, out) {
  const weights = [];
  for (let d = 0; d < out; d++) {
    const taps = [];
    for (let s = Math.floor((d * size) / out); s < size && s * out < (d + 1) * size; s++) {
      const overlap = Math.min((d + 1) * size, (s + 1) * out) - Math.max(d * size, s * out);
      if (overlap > 0) taps.push([s, overlap]);
    }
    weights.push(taps);
  }
  return weights;
}

// _cubic_weights: Keys' cubic (a = -3/4) from `size` pixels to `out` (more), edges replicated, in
// units of 1 / (4 D^3), D = 2 out; a tap u / D away weighs 5u^3 - 9u^2 D + 4D^3 (u <= D), else
// -3u^3 + 15u^2 D - 24u D^2 + 12D^3. Taps on the same source pixel (at an edge) add up.
function cubicWeights(size, out) {
  const big = 2 * out, weights = [];
  for (let d = 0; d < out; d++) {
    const at = (2 * d + 1) * size - out, first = floorDiv(at, big), frac = at - first * big;
    const taps = new Map();
    for (const [tap, u] of [[-1, big + frac], [0, frac], [1, big - frac], [2, 2 * big - frac]]) {
      const w = u <= big ? 5 * u ** 3 - 9 * u ** 2 * big + 4 * big ** 3
        : -3 * u ** 3 + 15 * u ** 2 * big - 24 * u * big ** 2 + 12 * big ** 3;
      const s = clamp(first + tap, size);
      taps.set(s, (taps.get(s) ?? 0) + w);
    }
    weights.push([...taps]);
  }
  return weights;
}

// fit_box: the longer side to 20 px, the other in proportion rounded half up, each side scaled to
// its whole pixels (exact area averaging when shrinking, Keys' cubic when enlarging a crop under
// 20 px, negative sums clipped to 0), then the 60th percentile of the ink (above a tenth of the
// brightest) stretched to 255, rounded half up (in BigInt: the cubic's sums pass 2^53 / 510).
export function fitBox(crop) {
  const { w, h, data } = crop;
  const longer = Math.max(w, h);
  const dh = Math.max(1, floorDiv(2 * DIGIT_BOX * h + longer, 2 * longer));
  const dw = Math.max(1, floorDiv(2 * DIGIT_BOX * w + longer, 2 * longer));
  const weights = longer <= DIGIT_BOX ? cubicWeights : areaWeights;
  const ys = weights(h, dh), xs = weights(w, dw);
  const rows = new Float64Array(h * dw);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < dw; x++) {
      let sum = 0;
      for (const [s, o] of xs[x]) sum += data[y * w + s] * o;
      rows[y * dw + x] = sum;
    }
  }
  const sums = new Float64Array(dh * dw);
  for (let y = 0; y < dh; y++) {
    for (const [s, o] of ys[y]) for (let x = 0; x < dw; x++) sums[y * dw + x] += rows[s * dw + x] * o;
  }
  for (let i = 0; i < sums.length; i++) sums[i] = Math.max(sums[i], 0);
  const top = Math.max(...sums);
  const ink = sums.filter((v) => 10 * v > top).sort();
  const level = ink.length ? ink[floorDiv(6 * (ink.length - 1), 10)] : 0;
  if (level <= 0) throw blank(NO_INK);
  const big = BigInt(level);
  return { w: dw, h: dh, data: Uint8Array.from(sums, (v) => Math.min(Number((BigInt(v) * 510n + big) / (2n * big)), 255)) };
}

// centre_in_field: into the middle of a 28x28 field, then shifted by whole pixels (rounded half
// up) so that the centre of mass is at (14, 14).
export function centreInField(digit) {
  const field = new Uint8Array(FIELD * FIELD);
  const top = (FIELD - digit.h) >> 1, left = (FIELD - digit.w) >> 1;
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < digit.h; y++) {
    for (let x = 0; x < digit.w; x++) {
      const v = digit.data[y * digit.w + x];
      field[(top + y) * FIELD + left + x] = v;
      mass += v;
      mx += v * (left + x);
      my += v * (top + y);
    }
  }
  if (mass <= 0) throw blank(NO_INK);
  const dx = floorDiv(FIELD * mass - 2 * mx + mass, 2 * mass), dy = floorDiv(FIELD * mass - 2 * my + mass, 2 * mass);
  const out = new Uint8Array(FIELD * FIELD);
  for (let y = 0; y < FIELD; y++) {
    for (let x = 0; x < FIELD; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < FIELD && sy >= 0 && sy < FIELD) out[y * FIELD + x] = field[sy * FIELD + sx];
    }
  }
  return out;
}

// mnist_from_ink: the denoised ink inside the mask grown by a stroke edge, cropped, fitted, centred.
export function mnistFromInk(ink, mask) {
  const grown = dilateMask(mask, ELLIPSE5);
  const smooth = denoise(ink);
  const { w, h } = ink;
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  const clean = smooth.data.map((v, i) => (grown.data[i] ? v : 0));
  clean.forEach((v, i) => {
    if (!v) return;
    const x = i % w, y = (i - x) / w;
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  });
  if (x1 < 0) throw blank(NO_WRITING);
  const crop = plane(x1 - x0 + 1, y1 - y0 + 1, Uint8Array);
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) crop.data[(y - y0) * crop.w + x - x0] = clean[y * w + x];
  return centreInField(fitBox(crop));
}

// find_ink: white ink on black and its mask on a copy at most `side` long, averaged down by a whole
// factor (what a digit and a number share in Python).
export function findInk(gray, dark, side) {
  const [view, f] = shrink(gray, side);
  const ink = whiteOnBlack(view, dark);
  return { ink, mask: inkMask(ink), factor: f };
}

// digit_in: the steps after the polarity, on a copy at most WORK_SIDE long; a digit under
// ZOOM_BELOW px there is looked at again in a square twice its size cut from the picture.
export function digitIn(gray, dark, zoomed = false) {
  const { ink, mask, factor: f } = findInk(gray, dark, WORK_SIDE);
  const found = mainCluster(mask);
  let x0 = ink.w, y0 = ink.h, x1 = -1, y1 = -1;
  found.data.forEach((v, i) => {
    if (!v) return;
    const x = i % ink.w, y = (i - x) / ink.w;
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  });
  if (x1 < 0) throw blank(NO_WRITING);
  const longer = Math.max(x1 - x0, y1 - y0) + 1;
  if (f === 1 || zoomed || longer >= ZOOM_BELOW) return mnistFromInk(ink, found);
  const side = 2 * longer * f;
  const around = (lo, hi, size) => {
    const start = floorDiv(lo + hi - side, 2);
    return [Math.max(0, start), Math.min(size, start + side)];
  };
  const [top, bottom] = around(y0 * f, (y1 + 1) * f, gray.h), [left, right] = around(x0 * f, (x1 + 1) * f, gray.w);
  const crop = plane(right - left, bottom - top, Uint8Array);
  for (let y = top; y < bottom; y++) crop.data.set(gray.data.subarray(y * gray.w + left, y * gray.w + right), (y - top) * crop.w);
  return digitIn(crop, dark, true);
}

// to_mnist: RGBA pixels (an ImageData's data) -> uint8 (28 * 28) digit, white on black. `dark`:
// the polarity when it is known (the page's own canvas holds dark strokes on white), else judged.
export function toMnist(rgba, w, h, dark = null) {
  checkSize(w, h);
  const gray = toGray(rgba, w, h);
  return digitIn(gray, dark ?? isDarkOnLight(gray));
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
