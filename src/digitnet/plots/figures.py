"""Pictures of data, training and results, drawn with matplotlib and rendered to PNG bytes.

Every function takes plain arrays or metrics and returns a ``Figure``; ``to_png`` renders one.
Drawing needs nothing of training or inference (they hand their results over), so training's
TensorBoard log draws with the same functions as ``digitnet show``.
Figures are made directly (``Figure`` + the Agg canvas), never through pyplot, so importing
this module changes no global matplotlib state and needs no screen.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from digitnet.plots.inspection import LayerOutput, Predictions

RIGHT, WRONG = "#1a7f37", "#cf222e"  # green and red that stay readable on white
TRAIN, EVAL = "#0969da", "#bc4c00"
DPI = 100
CELL = 1.1  # inches per image in the grids: 10 columns make about 1,100 pixels
GAP = 0.05  # inches of white on each side of an image in a grid


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes on a white background."""
    FigureCanvasAgg(fig)  # attaches itself to fig: rendering without any pyplot backend
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def image_grid(images: np.ndarray, captions: Sequence[str], colors: Sequence[str] | None = None,
               title: str = "", cols: int = 10) -> Figure:
    """uint8 images (N, 28, 28) drawn dark on light, each with a caption above it.

    One axes spans the figure, in inches, and holds every image (placed by its extent) and
    caption: a small axes per image under a constrained layout drew 50 images in 1.7 s, this
    in 0.2 s (AMD EPYC, AVX2), and training draws a grid of mistakes every epoch it logs.
    """
    n = len(images)
    cols = max(1, min(cols, n)) if n else 3  # three cells' room to say there is nothing
    rows = max(1, math.ceil(n / cols))
    caption = 0.17 * max((c.count("\n") + 1 for c in captions), default=1)  # inches of 9-point lines
    # A long title (a long run name) is wrapped to the grid's width rather than cut at its ends:
    # 13-point bold takes about a tenth of an inch per character.
    title = textwrap.fill(title, width=max(20, int(cols * CELL * 9)))
    title_height = 0.25 + 0.22 * (title.count("\n") + 1)
    width, height = cols * CELL, rows * (CELL + caption) + title_height
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    side = CELL - 2 * GAP
    for i, image in enumerate(images):
        row, col = divmod(i, cols)
        left, top = col * CELL + GAP, height - title_height - row * (CELL + caption) - caption
        ax.imshow(image, cmap="binary", vmin=0, vmax=255, interpolation="nearest",
                  extent=(left, left + side, top - side, top))
        ax.text(left + side / 2, top + 0.04, captions[i], ha="center", va="bottom", fontsize=9,
                color=colors[i] if colors else "black")
    if n == 0:
        ax.text(width / 2, (height - title_height) / 2, "nothing to show", ha="center",
                va="center", fontsize=12)
    ax.set(xlim=(0, width), ylim=(0, height), aspect="auto")  # imshow rescales; inches again
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig


def samples(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """Images with their true class names."""
    return image_grid(images, [classes[int(y)] for y in labels], title=title)


def predictions(preds: Predictions, classes: Sequence[str], title: str) -> Figure:
    """Predicted class and its probability; green if right, red with the true class if wrong."""
    captions = [
        f"{classes[p]} {c:.0%}" + ("" if p == y else f"\ntrue {classes[y]}")
        for p, c, y in zip(preds.predicted, preds.confidence, preds.labels, strict=True)
    ]
    colors = [RIGHT if ok else WRONG for ok in preds.right]
    right = int(preds.right.sum())
    return image_grid(preds.images, captions, colors,
                      title=f"{title}: {right} of {len(preds.labels)} right")


def errors(mistakes: Predictions, classes: Sequence[str], title: str) -> Figure:
    """The model's mistakes as "true -> predicted (probability)"."""
    captions = [f"{classes[y]} → {classes[p]}\n{c:.1%}"
                for y, p, c in zip(mistakes.labels, mistakes.predicted, mistakes.confidence, strict=True)]
    return image_grid(mistakes.images, captions, [WRONG] * len(captions),
                      title=f"{title}: true → predicted (probability)")


def confusion(matrix: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """Counts (true x predicted), every cell annotated; right answers blue, mistakes orange.

    Colours are on a log scale so that a handful of mistakes still shows next to ~1,000 hits.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    total, right = int(matrix.sum()), int(np.trace(matrix))
    fig = Figure(figsize=(8.6, 7.8), layout="constrained")
    ax = fig.subplots()
    diagonal = np.eye(k, dtype=bool)
    norm = LogNorm(vmin=1, vmax=max(int(matrix.max()), 2))
    ax.imshow(np.ma.masked_where(~diagonal | (matrix == 0), matrix), cmap="Blues", norm=norm)
    ax.imshow(np.ma.masked_where(diagonal | (matrix == 0), matrix), cmap="Oranges", norm=norm)
    for i in range(k):
        for j in range(k):
            count = int(matrix[i, j])
            color = "#bbbbbb" if count == 0 else ("white" if norm(count) > 0.55 else "black")
            ax.text(j, i, str(count), ha="center", va="center", fontsize=10, color=color)
    ax.set_xticks(range(k), classes, rotation=45 if max(map(len, classes)) > 2 else 0,
                  ha="right" if max(map(len, classes)) > 2 else "center")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class", fontsize=11)
    ax.set_ylabel("true class", fontsize=11)
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    accuracy = right / total if total else 0.0
    ax.set_title(f"{title}\n{right:,} of {total:,} test images right ({accuracy:.2%}), "
                 f"{total - right:,} mistakes", fontsize=12)
    return fig


def ema(values: Sequence[float], smoothing: float) -> np.ndarray:
    """Exponential moving average with the start-up bias removed (as TensorBoard smooths)."""
    out, avg = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        avg = smoothing * avg + (1 - smoothing) * v
        out[i] = avg / (1 - smoothing ** (i + 1))
    return out


def history(history: dict[str, Any], steps_per_epoch: int, title: str,
            smoothing: float = 0.8) -> Figure:
    """Loss and accuracy against epochs: the per-step trace (raw and smoothed) and each epoch's
    train and test (or validation) figures.

    ``history`` is metrics.json's ``{"epochs": [...], "steps": [{"step", "loss", "accuracy"}]}``.
    """
    epochs, steps = history.get("epochs", []), history.get("steps", [])
    eval_name = "val" if epochs and "val_loss" in epochs[0] else "test"
    eval_label = "validation" if eval_name == "val" else "test"
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    x_steps = np.array([s["step"] for s in steps], dtype=float) / max(steps_per_epoch, 1)
    x_epochs = [e["epoch"] for e in epochs]
    for ax, key, name in ((loss_ax, "loss", "loss (cross-entropy)"), (acc_ax, "accuracy", "accuracy")):
        if steps:
            raw = [s[key] for s in steps]
            ax.plot(x_steps, raw, color=TRAIN, alpha=0.25, linewidth=1, label="train, per step")
            ax.plot(x_steps, ema(raw, smoothing), color=TRAIN, linewidth=2,
                    label="train, per step (smoothed)")
        train = [e[f"train_{key}"] for e in epochs]
        if any(v is not None for v in train):
            ax.plot(x_epochs, train, "o--", color=TRAIN, markersize=7, label="train, epoch mean")
        ax.plot(x_epochs, [e[f"{eval_name}_{key}"] for e in epochs], "s-", color=EVAL,
                markersize=7, linewidth=2, label=f"{eval_label}, end of epoch")
        ax.set_title(name, fontsize=12)
        ax.set_xlabel("epoch")
        ax.set_xlim(0, max(x_epochs + list(x_steps) + [1]) * 1.06)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9, loc="best")
    acc_ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if not epochs and not steps:
        loss_ax.text(0.5, 0.5, "no history recorded", ha="center", va="center",
                     transform=loss_ax.transAxes)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig


def _is_maps(layer: LayerOutput) -> bool:
    """Whether the output is a stack of 2-D maps (C, H, W) rather than one value per unit."""
    return layer.values.ndim == 3 and layer.values.shape[1:] != (1, 1)


def _feature_row(fig: Figure, grid, row: int, layer: LayerOutput, per_layer: int) -> None:
    """One layer: its name, then its first ``per_layer`` maps (C, H, W) or a strip of values."""
    values = layer.values
    shape = "×".join(str(s) for s in values.shape)
    if _is_maps(layer):
        label, maps = fig.add_subplot(grid[row, 0]), values[:per_layer]
        vmin, vmax = float(maps.min()), float(maps.max())  # one scale per layer: dead maps look dead
        for j, fmap in enumerate(maps):
            ax = fig.add_subplot(grid[row, j + 1])
            ax.imshow(fmap, cmap="magma", vmin=vmin, vmax=max(vmax, vmin + 1e-6), interpolation="nearest")
            ax.set_axis_off()
        shown = f"first {len(maps)} of {values.shape[0]}" if len(maps) < values.shape[0] else "all"
        label.text(0, 0.5, f"{layer.name}\n{layer.kind} {shape}\n{shown}", va="center", fontsize=8.5)
    else:
        label = fig.add_subplot(grid[row, 0])
        ax = fig.add_subplot(grid[row, 1:])
        flat = values.reshape(-1)
        ax.imshow(flat[None], cmap="magma", aspect="auto", interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        label.text(0, 0.5, f"{layer.name}\n{layer.kind} {shape}", va="center", fontsize=8.5)
    label.set_axis_off()


def filters(layer_name: str, kernels: np.ndarray, image: np.ndarray, label: str,
            outputs: Sequence[LayerOutput], probs: np.ndarray, classes: Sequence[str],
            title: str, per_layer: int = 16) -> Figure:
    """The first layer's kernels (N, kh, kw), then one image (28, 28) through every layer, ending
    with the class probabilities (classes,) the model gives it."""
    cols = min(16, len(kernels))
    kernel_rows = math.ceil(len(kernels) / cols)
    heights = [1.0] + [0.72 if _is_maps(o) else 0.42 for o in outputs] + [1.3]
    fig = Figure(figsize=(11, 0.66 * kernel_rows + 0.9 + sum(heights) + 0.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[0.66 * kernel_rows + 0.5, sum(heights) + 0.5])

    limit = float(np.abs(kernels).max()) or 1.0
    axes = top.subplots(kernel_rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, kernel in zip(axes.flat, kernels, strict=False):
        ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    size = "×".join(str(s) for s in kernels.shape[1:])
    top.suptitle(f"{title}: the {len(kernels)} {size} filters of {layer_name} "
                 "(red adds, blue subtracts)", fontsize=12, fontweight="bold")

    columns = per_layer + 1
    grid = bottom.add_gridspec(len(heights), columns, height_ratios=heights,
                               width_ratios=[2.4] + [1] * per_layer)
    ax = bottom.add_subplot(grid[0, 1:3])
    ax.imshow(image, cmap="binary", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    head = bottom.add_subplot(grid[0, 0])
    head.text(0, 0.5, f"input\ntrue class {label}", va="center", fontsize=9)
    head.set_axis_off()
    for row, layer in enumerate(outputs, start=1):
        _feature_row(bottom, grid, row, layer, per_layer)
    answer = bottom.add_subplot(grid[-1, 1:])
    best = int(np.argmax(probs))
    answer.bar(range(len(probs)), probs, color=[RIGHT if i == best else "#8c959f" for i in range(len(probs))])
    answer.set_xticks(range(len(probs)), classes, fontsize=8.5)
    answer.set_ylim(0, 1)
    answer.yaxis.set_major_formatter(PercentFormatter(1.0))
    answer.tick_params(axis="y", labelsize=8)
    text = bottom.add_subplot(grid[-1, 0])
    text.text(0, 0.5, f"answer\n{classes[best]} {probs[best]:.1%}", va="center", fontsize=9)
    text.set_axis_off()
    bottom.suptitle("one test image through every layer (colours: low dark, high bright)",
                    fontsize=12, fontweight="bold")
    return fig


def _probability_bars(ax, probs: np.ndarray, classes: Sequence[str], marked: Sequence[int]) -> None:
    """The class probabilities (classes,) as bars, the ``marked`` classes in colour."""
    colors = ["#8c959f"] * len(probs)
    for i, c in zip(marked, (RIGHT, EVAL), strict=False):
        colors[i] = c
    ax.bar(range(len(probs)), probs, color=colors)
    ax.set_xticks(range(len(probs)), [textwrap.fill(c, 5) for c in classes], fontsize=8)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def method_note(method: dict[str, Any]) -> str:
    """How a method measured a pixel's push, under its map (``method``: the method and its
    settings, as ``Explanation.method_dict`` gives them)."""
    if method["name"] == "occlusion":
        return f"occlusion: {method['window']}×{method['window']} squares blanked"
    return "integrated gradients"


def explanation(expl: Any, title: str, maps: int = 32) -> Figure:
    """What the network sees in one digit (``expl``: an ``inference.explain.Explanation``): the
    image, which pixels pushed it towards its answer (and the runner-up), the probabilities, and
    the first layer's feature maps (up to ``maps``)."""
    shown = expl.feature_maps.values[:maps]  # (C, H, W)
    cols = 8
    map_rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(10, 3.3 + 1.05 * map_rows), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.0, 1.05 * map_rows + 0.3])
    panels = top.subplots(1, 2 + len(expl.saliency), width_ratios=[1] * (1 + len(expl.saliency)) + [2.2])
    panels[0].imshow(expl.image, cmap="binary", vmin=0, vmax=255, interpolation="nearest")
    panels[0].set_title("what the network got\n(28×28)", fontsize=10)
    # One colour scale for every map, so that a weak push for the runner-up looks weak.
    limit = max(float(np.abs(s.values).max()) for s in expl.saliency) or 1.0
    for ax, s, color in zip(panels[1:], expl.saliency, (RIGHT, EVAL), strict=False):
        ax.imshow(s.values, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.contour(expl.image, levels=[100], colors="#57606a", linewidths=0.6)
        ax.set_title(f"pixels for {s.name} ({s.probability:.0%})\nred towards, blue away",
                     fontsize=10, color=color)
        ax.text(0.5, -0.04, method_note(expl.method_dict()), transform=ax.transAxes, ha="center", va="top",
                fontsize=8, color="#57606a")
    for ax in panels[:-1]:
        ax.set_axis_off()
    _probability_bars(panels[-1], expl.probabilities, expl.classes, [s.target for s in expl.saliency])
    panels[-1].set_title(f"answer: {expl.answer.text}", fontsize=11, fontweight="bold")
    top.suptitle(title, fontsize=13, fontweight="bold")

    axes = bottom.subplots(map_rows, cols, squeeze=False)
    vmin, vmax = float(shown.min()), float(shown.max())
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, fmap in zip(axes.flat, shown, strict=False):
        ax.imshow(fmap, cmap="magma", vmin=vmin, vmax=max(vmax, vmin + 1e-6), interpolation="nearest")
    fm = expl.feature_maps
    count = f"{len(shown)} of {fm.values.shape[0]}" if len(shown) < fm.values.shape[0] else \
        f"all {len(shown)}"
    bottom.suptitle(f"first layer: {count} feature maps of {fm.layer} ({', '.join(fm.kinds)}; "
                    "dark low, bright high)", fontsize=11)
    return fig


def run_history(metrics: dict[str, Any], name: str) -> Figure:
    """The training curves of a run from its metrics.json."""
    # the steps of an epoch, its last batch partial, as training counts them (epoch.steps_per_epoch)
    per_epoch = math.ceil(metrics["train_images"] / metrics["batch_size"])
    return history(metrics["history"], per_epoch, f"Training of {name}")


def confusion_title(name: str, dataset: str) -> str:
    """One title for the confusion matrix, whether ``train`` or ``show confusion`` draws it."""
    return f"{name} on the {dataset} test set"


def training(metrics: dict[str, Any], classes: Sequence[str], name: str,
             dataset: str) -> dict[str, Figure]:
    """The pictures a finished training run leaves: ``history.png`` and ``confusion.png``."""
    return {
        "history.png": run_history(metrics, name),
        "confusion.png": confusion(np.array(metrics["confusion"]), classes,
                                   confusion_title(name, dataset)),
    }
