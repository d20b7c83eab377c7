// What is on a drawing canvas, painted the same way on both pages: dark ink on white paper
// (like a photo of a digit written on paper), pictures scaled to fit.

// MNIST strokes are about 2.5 px in a 20 px tall digit (1/8); a digit drawn over about 3/4
// of the canvas height gets that proportion from a line 9% of the canvas height.
export const STROKE = 0.09;

// items, in order: {stroke: [[x, y], ...]} in canvas pixels, or {image, fit: {x, y, scale}}.
export function paint(ctx, items) {
  const { width, height } = ctx.canvas;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.strokeStyle = "#111";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = Math.round(height * STROKE);
  for (const item of items) {
    if (item.image) {
      const { x, y, scale } = item.fit;
      ctx.drawImage(item.image, x, y, item.image.width * scale, item.image.height * scale);
    } else {
      drawStroke(ctx, item.stroke);
    }
  }
}

function drawStroke(ctx, points) {
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  // a single tap is a dot: a zero-length line with round caps
  for (const [x, y] of points.length > 1 ? points.slice(1) : points) ctx.lineTo(x, y);
  ctx.stroke();
}

// Where an image goes on a canvas: scaled to fit, centred.
export function fit(image, canvas) {
  const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
  return { scale, x: (canvas.width - image.width * scale) / 2, y: (canvas.height - image.height * scale) / 2 };
}

// Only strokes on the canvas: dark ink on white by construction.
export function onlyStrokes(items) {
  return items.length > 0 && items.every((item) => !item.image);
}

// Strokes drawn on ``pad`` with a mouse, finger or pen. Each press starts a stroke (canvas
// pixels) appended to ``items()``; ``on.started()`` follows it, ``on.moved()`` every move,
// ``on.ended()`` the lift (or a cancelled pointer).
export function captureStrokes(pad, items, on) {
  let drawing = null; // the stroke being drawn
  const point = (event) => {
    const r = pad.getBoundingClientRect();
    return [(event.clientX - r.left) * (pad.width / r.width), (event.clientY - r.top) * (pad.height / r.height)];
  };
  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 && event.pointerType === "mouse") return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    drawing = { stroke: [point(event)] };
    items().push(drawing);
    on.started();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) drawing.stroke.push(point(e));
    on.moved();
  });
  const end = () => {
    if (!drawing) return;
    drawing = null;
    on.ended();
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
}
