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

// Keys that move the keyboard pen: [dx, dy] in steps. Home, End, Page Up and Page Down go
// diagonally, as on a numeric keypad (7, 1, 9, 3).
const MOVES = {
  ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
  Home: [-1, -1], PageUp: [1, -1], End: [-1, 1], PageDown: [1, 1],
};

// Drawing on ``pad`` with keys alone: the keys of MOVES move a pen (a 28th of the canvas height
// per press; Shift: four times as far), Space puts it down (a stroke starts where it is) or
// lifts it. ``marker`` (an element over the canvas) shows where the pen is and whether it is
// down. The strokes and callbacks are those of captureStrokes.
export function keyboardPen(pad, marker, items, on) {
  let pen = null; // [x, y] in canvas pixels, from the first key
  let drawing = null; // the stroke being drawn
  const show = () => {
    marker.style.left = `calc(2px + ${pen[0] / pad.width} * (100% - 4px))`;
    marker.style.top = `calc(2px + ${pen[1] / pad.height} * (100% - 4px))`;
    marker.classList.toggle("down", drawing !== null);
    marker.hidden = false;
  };
  const lift = () => {
    if (!drawing) return;
    drawing = null;
    if (pen) show();
    on.ended();
  };
  pad.addEventListener("keydown", (event) => {
    if (drawing && !items().includes(drawing)) drawing = null; // undone or cleared meanwhile
    const move = MOVES[event.key];
    if (!move && event.key !== " ") return;
    event.preventDefault();
    pen ??= [pad.width / 2, pad.height / 2];
    if (event.key === " ") {
      if (drawing) return lift();
      drawing = { stroke: [[...pen]] };
      items().push(drawing);
      show();
      return on.started();
    }
    const step = (pad.height / 28) * (event.shiftKey ? 4 : 1);
    pen = [Math.min(Math.max(pen[0] + move[0] * step, 0), pad.width - 1),
      Math.min(Math.max(pen[1] + move[1] * step, 0), pad.height - 1)];
    show();
    if (drawing) {
      drawing.stroke.push([...pen]);
      on.moved();
    }
  });
  pad.addEventListener("blur", () => {
    lift();
    marker.hidden = true;
  });
}
