"""What the network sees in one digit: its first layer's feature maps, and which pixels pushed
it towards its answer (and, when it is unsure, towards the runner-up).

Both methods explain one score, the class's log-odds: log p / (the other classes' probabilities
summed). Unlike the probability it does not saturate when the network is sure, and it can be
taken from probabilities alone, which is all an ONNX model gives.

- ``occlusion`` (the default, and what ``digitnet show explain``, ``/api/explain`` and the page
  show; Zeiler & Fergus, 2014): each ``WINDOW`` x ``WINDOW`` square of the picture, in steps of
  ``STRIDE`` pixels, is blanked in turn (set to the background, 0), and a pixel's value is the
  mean drop of the log-odds over the squares that cover it. It needs only the network's
  probabilities for a batch of pictures, so the page repeats it on the device with the same
  ONNX model (``web/static/reader/explain.js``) and draws the same map. Squares without ink are
  not run: blanking them changes nothing, their drop is exactly 0. A digit costs one batch of
  about 75 pictures (at most 169, plus the picture and a blank page).
- ``integrated-gradients`` (Sundararajan et al., 2017), for PyTorch models only: the gradient of
  the log-odds averaged along the straight path from a blank page to the image, times the image.
  The shares add up to the log-odds gained over a blank page (``Saliency.total``), closer the
  more steps the path has; ``steps=1`` is the plain gradient times input.

``Explanation.to_dict`` gives the same as small integer arrays, for JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from digitnet.errors import DigitnetError
from digitnet.models import probabilities as softmax
from digitnet.preprocess import input_array, input_tensor
from digitnet.runs import calibration
from digitnet.runs.config import NOT_A_DIGIT
from digitnet.threads import torch_threads

METHODS = ("occlusion", "integrated-gradients")
WINDOW, STRIDE = 4, 2  # px: the blanked square and its step: 13 x 13 places, every pixel covered
# Points on the path from the blank page (integrated gradients). For the bundled reader on 20
# MNIST test digits the shares summed to within a median 9% of the total with 32 steps.
STEPS = 32
MAPS = 16  # feature maps in the JSON form: enough to see what the filters do, 12 KB
TINY = 1e-30  # probabilities below this count as this: a log-odds stays finite
ELEMENTWISE = (nn.BatchNorm2d, nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU)  # kept with the conv

# images (N, 28, 28), uint8 or float32 in [0, 1] -> float32 probabilities (N, classes)
Probabilities = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FeatureMaps:
    """The first layer's output for the image: the first convolution, with the batch norm and
    activation that directly follow it when they are modules of their own."""

    layer: str  # e.g. "conv1" or "features.0.0 → features.0.2"
    kinds: tuple[str, ...]  # e.g. ("Conv2d",) or ("Conv2d", "BatchNorm2d", "ReLU")
    values: np.ndarray  # float32 (C, H, W)


@dataclass(frozen=True)
class Saliency:
    """How much each pixel pushed the network towards class ``target``."""

    target: int
    name: str
    probability: float
    values: np.ndarray  # float32 (28, 28); > 0 pushed towards the class, < 0 away from it
    total: float  # log-odds of the class for the image minus for a blank page


@dataclass(frozen=True)
class Explanation:
    image: np.ndarray  # uint8 (28, 28), as the network saw it
    classes: tuple[str, ...]
    probabilities: np.ndarray  # float32 (classes,)
    answer: calibration.Answer
    feature_maps: FeatureMaps
    saliency: list[Saliency]  # the answer first, then the runner-up when unsure
    method: str  # one of METHODS

    def method_dict(self) -> dict[str, Any]:
        """The method and its settings, as the JSON form and the page's model.json name them."""
        return method_dict(self.method)

    def to_dict(self, maps: int = MAPS) -> dict[str, Any]:
        """JSON-ready: each array as integers in [-255, 255] and the ``scale`` that makes them
        the real values again (value = integer * scale / 255); at most ``maps`` feature maps."""
        fm = self.feature_maps
        return {
            "answer": self.answer.to_dict(),
            "classes": list(self.classes),
            "probabilities": [round(float(p), 6) for p in self.probabilities],
            "image": self.image.tolist(),
            "method": self.method_dict(),
            "feature_maps": {"layer": fm.layer, "kinds": list(fm.kinds),
                             "channels": int(fm.values.shape[0]), **quantize(fm.values[:maps])},
            "saliency": [{"class": s.target, "name": s.name, "probability": round(s.probability, 6),
                          "total": round(s.total, 4), **quantize(s.values)} for s in self.saliency],
        }


def method_dict(method: str) -> dict[str, Any]:
    if method == "occlusion":
        return {"name": method, "score": "log-odds", "window": WINDOW, "stride": STRIDE}
    return {"name": method, "score": "log-odds", "steps": STEPS}


def quantize(values: np.ndarray) -> dict[str, Any]:
    """{"shape", "scale", "values"}: ``values`` rounded to integers in [-255, 255] of ``scale``."""
    scale = float(np.abs(values).max())
    ints = np.round(values * (255 / scale)).astype(np.int16) if scale else np.zeros(values.shape, np.int16)
    return {"shape": list(values.shape), "scale": scale, "values": ints.tolist()}


def first_layer_modules(model: nn.Module, x: torch.Tensor
                        ) -> tuple[list[tuple[str, nn.Module]], torch.Tensor]:
    """Run ``x`` (N, 1, 28, 28) and find the first convolution and the batch norm and
    activation modules that run right after it: [(name, module), ...] and their output
    (N, C, H, W)."""
    order: list[tuple[str, nn.Module, torch.Tensor]] = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: order.append((name, m, o)))
             for name, module in model.named_modules() if name and not list(module.children())]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    start = next((i for i, (_, m, _) in enumerate(order) if isinstance(m, nn.Conv2d)), None)
    if start is None:
        raise DigitnetError(f"{type(model).__name__} has no convolution layer whose feature maps "
                            "could be shown")
    end = start
    while end + 1 < len(order) and isinstance(order[end + 1][1], ELEMENTWISE):
        end += 1
    return [(name, module) for name, module, _ in order[start : end + 1]], order[end][2]


def describe(modules: list[tuple[str, nn.Module]]) -> tuple[str, tuple[str, ...]]:
    """The first layer's name ("features.0.0 → features.0.2") and the kinds of its modules."""
    names = [modules[0][0]] + ([modules[-1][0]] if len(modules) > 1 else [])
    return " → ".join(names), tuple(type(m).__name__ for _, m in modules)


def first_layer(model: nn.Module, x: torch.Tensor) -> FeatureMaps:
    """The first layer's feature maps for ``x`` (1, 1, 28, 28)."""
    modules, out = first_layer_modules(model, x)
    return FeatureMaps(*describe(modules), out[0].float().cpu().numpy())


def log_odds(probs: np.ndarray, target: int) -> np.ndarray:
    """(N, classes) probabilities -> (N,) float64 log p[target] - log(sum of the others).

    The others are summed rather than taken as 1 - p: for a sure answer 1 - p is lost to
    float32 rounding, while the small probabilities themselves are exact enough."""
    p = np.asarray(probs, np.float64)
    rest = np.delete(p, target, axis=1).sum(axis=1)
    return np.log(np.maximum(p[:, target], TINY)) - np.log(np.maximum(rest, TINY))


def windows(window: int = WINDOW, stride: int = STRIDE, side: int = 28) -> list[tuple[int, int]]:
    """The top-left corners (row, column) of the squares occlusion blanks, row by row."""
    places = range(0, side - window + 1, stride)
    return [(r, c) for r in places for c in places]


def occlusion(probabilities: Probabilities, image: np.ndarray, targets: list[int],
              window: int = WINDOW, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """Each target's map (T, 28, 28) of the mean log-odds drop when the squares covering a
    pixel are blanked, and its log-odds for ``image`` (float32 (28, 28) in [0, 1]) minus a
    blank page's."""
    corners = windows(window, stride, image.shape[0])
    inked = [(r, c) for r, c in corners if image[r : r + window, c : c + window].any()]
    batch = np.repeat(image[None], 2 + len(inked), axis=0)  # the image, a blank page, each copy
    batch[1] = 0
    for i, (r, c) in enumerate(inked, start=2):
        batch[i, r : r + window, c : c + window] = 0
    probs = probabilities(batch)  # (2 + W, classes)
    covered = np.zeros(image.shape)
    for r, c in corners:
        covered[r : r + window, c : c + window] += 1
    values = np.zeros((len(targets), *image.shape))
    totals = np.zeros(len(targets))
    for t, target in enumerate(targets):
        score = log_odds(probs, target)
        for (r, c), drop in zip(inked, score[0] - score[2:], strict=True):
            values[t, r : r + window, c : c + window] += drop
        totals[t] = score[0] - score[1]
    return (values / covered).astype(np.float32), totals


def torch_log_odds(logits: torch.Tensor, target: int) -> torch.Tensor:
    """(N, classes) logits -> (N,) log-odds of ``target``, as ``log_odds`` from probabilities."""
    logp = torch.log_softmax(logits.float(), dim=1)
    others = torch.cat([logp[:, :target], logp[:, target + 1 :]], dim=1)
    return logp[:, target] - torch.logsumexp(others, dim=1)


def integrated_gradients(model: nn.Module, x: torch.Tensor, targets: list[int],
                         steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Attributions (T, 28, 28) of each target's log-odds to the pixels of ``x``
    (1, 1, 28, 28), and each target's log-odds for the image minus a blank page's, (T,).

    The path's points are the midpoints of ``steps`` equal segments (a midpoint Riemann sum),
    except ``steps=1``: the image itself, which makes it gradient times input.
    """
    alphas = (torch.ones(1, device=x.device) if steps == 1
              else (torch.arange(steps, dtype=torch.float32, device=x.device) + 0.5) / steps)
    path = (alphas.view(-1, 1, 1, 1) * x).requires_grad_(True)  # (steps, 1, 28, 28)
    with torch.enable_grad():
        logits = model(path)  # (steps, classes)
        grads = [torch.autograd.grad(torch_log_odds(logits, t).sum(), path, retain_graph=True)[0]
                 for t in targets]
    with torch.no_grad():
        ends = model(torch.cat([torch.zeros_like(x), x]))
        totals = torch.stack([torch_log_odds(ends, t) for t in targets])  # (T, 2)
    values = torch.stack([(g.mean(dim=0) * x[0])[0] for g in grads])  # (T, 28, 28)
    return values.cpu().numpy(), (totals[:, 1] - totals[:, 0]).cpu().numpy()


def targets_of(answer: calibration.Answer) -> list[int]:
    """What to explain: the class the answer names first, then the runner-up when unsure."""
    first = NOT_A_DIGIT if answer.verdict == "not_a_digit" else answer.digit
    return [first] + ([answer.runner_up] if answer.verdict == "unsure" else [])


def model_probabilities(model: nn.Module) -> Probabilities:
    """The PyTorch model's probabilities for images (N, 28, 28) as ``input_array`` takes them."""
    device = next(model.parameters()).device

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return softmax(model(input_tensor(images, device))).cpu().numpy()

    return run


def explain(model: nn.Module, image: np.ndarray, classes: tuple[str, ...],
            verdict: calibration.Verdict | None = None, method: str = "occlusion",
            steps: int = STEPS, probabilities: Probabilities | None = None) -> Explanation:
    """Explain ``model``'s answer for one digit (28, 28) as ``input_array`` takes it.

    ``classes`` names the model's outputs; ``verdict`` holds the thresholds that make an answer
    "unsure" or "not a digit" (a run's, as ``Predictor.verdict`` has them). ``probabilities``
    runs the network for the answer and for occlusion (default: ``model`` in PyTorch; a
    ``Predictor``'s runs its ONNX model when it has one, as the page on the device does).
    """
    if method not in METHODS:
        raise DigitnetError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if steps < 1:
        raise DigitnetError(f"steps must be at least 1, got {steps}")
    x = input_array(image)  # (1, 1, 28, 28) in [0, 1]; refuses other shapes
    run = probabilities or model_probabilities(model)
    was_training = model.training
    model.eval()
    try:
        probs = run(x[:, 0])[0]  # (classes,)
        if len(probs) != len(classes):
            raise DigitnetError(f"the model has {len(probs)} outputs but {len(classes)} class names")
        answer = calibration.answers(probs[None], verdict or calibration.Verdict(), classes)[0]
        targets = targets_of(answer)
        xt = torch.from_numpy(x).to(next(model.parameters()).device)
        if method == "occlusion":
            values, totals = occlusion(run, x[0, 0], targets)
        else:
            values, totals = integrated_gradients(model, xt, targets, steps)
        with torch_threads(1):  # one image: more threads only wait for each other
            maps = first_layer(model, xt)
    finally:
        model.train(was_training)
    saliency = [Saliency(t, classes[t], float(probs[t]), v, float(total))
                for t, v, total in zip(targets, values, totals, strict=True)]
    shown = np.round(x[0, 0] * 255).astype(np.uint8)  # (28, 28): what the network got
    return Explanation(shown, tuple(classes), probs, answer, maps, saliency, method)


def explain_with(predictor, image: np.ndarray, method: str = "occlusion", steps: int = STEPS) -> Explanation:
    """``explain`` with a ``Predictor``'s model, class names, verdict thresholds and runtime."""
    return explain(predictor.model, image, predictor.classes, predictor.verdict, method, steps,
                   probabilities=predictor.probabilities)
