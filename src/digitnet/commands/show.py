"""``digitnet show``: draw data, training and results of a run as a PNG and print its path."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from digitnet import atomic, runs
from digitnet.commands.common import add_run_option, console
from digitnet.datasets import SPECS, Dataset, load
from digitnet.errors import DigitnetError
from digitnet.inference import bundled, explain, files
from digitnet.inference.predictor import Predictor
from digitnet.plots import figures, inspection
from digitnet.runs.run import Run

KINDS = ("samples", "predictions", "errors", "confusion", "history", "filters", "explain")
DEFAULT_N = {"samples": 40, "predictions": 40, "errors": 30, "filters": 16}


def register(sub) -> None:
    p = sub.add_parser("show", help="draw samples, predictions, mistakes, curves, filters or what "
                                    "the network sees in your image as a PNG")
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=" | ".join(KINDS))
    p.add_argument("image", nargs="?", type=Path, metavar="IMAGE",
                   help="explain: the image file (a photo, scan or drawing of one digit)")
    add_run_option(p, "; samples need none; explain uses the reader bundled with digitnet, "
                      "or 'latest'")
    p.add_argument("--out", type=Path, help="the PNG to write (default: RUN_DIR/KIND.png, "
                   "runs/samples-DATASET.png for samples without a run, runs/explain-IMAGE.png)")
    p.add_argument("--n", type=int, help="images to show (samples 40, predictions 40, errors 30); "
                   "for filters, feature maps per layer (16)")
    p.add_argument("--seed", type=int, default=0, help="which random images samples and predictions "
                   "show (default 0)")
    p.add_argument("--index", type=int, default=0,
                   help="the test image filters follows through the layers (default 0)")
    p.add_argument("--method", choices=explain.METHODS, default="occlusion",
                   help="explain: how each pixel's push is measured: occlusion (default; as "
                        "/api/explain and the page) or integrated-gradients")
    p.add_argument("--dataset", choices=sorted(SPECS), help="default: the run's, or mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.n is not None and args.n < 1:
        raise DigitnetError(f"--n {args.n} shows nothing; give a number of at least 1")
    n = DEFAULT_N.get(args.kind, 1) if args.n is None else args.n
    if (args.image is None) == (args.kind == "explain"):
        raise DigitnetError("give an IMAGE with 'show explain IMAGE', and only with explain")
    if args.kind == "explain":
        fig = draw_explain(args.image, args.run_dir, args.method)
        out = args.out or runs.DEFAULT_ROOT / f"explain-{args.image.stem or 'image'}.png"
    elif args.kind == "samples" and args.run_dir is None:
        dataset = args.dataset or "mnist"
        fig = samples(load(dataset, args.data_dir), n, args.seed)
        out = args.out or runs.DEFAULT_ROOT / f"samples-{dataset}.png"
    else:
        run = Run.open(runs.resolve_run_dir(args.run_dir))
        fig = DRAW[args.kind](run, args, n)
        out = args.out or run.path / f"{args.kind}.png"
    atomic.write_bytes(out, figures.to_png(fig))
    console().print(f"wrote {out}", markup=False)
    return 0


def run_dataset(run: Run, args) -> Dataset:
    return load(args.dataset or run.config.dataset, args.data_dir)


def samples(ds: Dataset, n: int, seed: int) -> Figure:
    index = inspection.sample(len(ds.x_train), n, seed)
    return figures.samples(ds.x_train[index], ds.y_train[index], ds.classes,
                         f"{ds.name}: {len(index)} training images and their labels")


def draw_samples(run: Run, args, n: int) -> Figure:
    return samples(run_dataset(run, args), n, args.seed)


def draw_predictions(run: Run, args, n: int) -> Figure:
    predictor, ds = Predictor.from_run(run), run_dataset(run, args)
    index = inspection.sample(len(ds.x_test), n, args.seed)
    preds = inspection.predict(predictor, ds.x_test[index], ds.y_test[index])
    return figures.predictions(preds, ds.classes, f"{run.path.name} on {len(index)} {ds.name} test images")


def draw_errors(run: Run, args, n: int) -> Figure:
    predictor, ds = Predictor.from_run(run), run_dataset(run, args)
    preds = inspection.predict(predictor, ds.x_test, ds.y_test)
    mistakes = inspection.most_confident_mistakes(preds, n)
    wrong = int((~preds.right).sum())
    return figures.errors(mistakes, ds.classes, f"{run.path.name}: the {len(mistakes.labels)} most "
                        f"confident of {wrong} mistakes on the {ds.name} test set")


def draw_confusion(run: Run, args, n: int) -> Figure:
    predictor, ds = Predictor.from_run(run), run_dataset(run, args)
    preds = inspection.predict(predictor, ds.x_test, ds.y_test)
    return figures.confusion(preds.confusion(), ds.classes, figures.confusion_title(run.path.name, ds.name))


def draw_history(run: Run, args, n: int) -> Figure:
    metrics = run.finished_metrics()
    try:
        return figures.run_history(metrics, run.path.name)
    except (KeyError, TypeError) as e:
        raise DigitnetError(f"{run.path / runs.METRICS_FILE}: no training history ({e}); "
                            "train the run (again) to record it") from e


def draw_filters(run: Run, args, n: int) -> Figure:
    predictor, ds = Predictor.from_run(run), run_dataset(run, args)
    if not 0 <= args.index < len(ds.x_test):
        raise DigitnetError(f"--index {args.index} is not a test image; give 0 to {len(ds.x_test) - 1}")
    image, label = ds.x_test[args.index], int(ds.y_test[args.index])
    layer_name, kernels = inspection.first_conv_filters(predictor.model)
    outputs = inspection.layer_outputs(predictor.model, image)
    probs = predictor.probabilities(image)[0]
    return figures.filters(layer_name, kernels, image, ds.classes[label], outputs, probs, ds.classes,
                         run.path.name, per_layer=n)


def draw_explain(image: Path, run_dir: Path | None, method: str) -> Figure:
    """What the model (the bundled reader without --run) sees in one image file; its runtime is
    the one predict uses (the checked model.onnx when there is one, as on the page)."""
    model_dir = bundled.model_dir(run_dir)
    digit, _ = files.prepare(image)  # uint8 (28, 28), the way predict prepares it
    expl = explain.explain_with(Predictor.from_run(model_dir), digit, method)
    name = "the bundled reader" if model_dir == bundled.READER_DIR else model_dir.name
    return figures.explanation(expl, f"What {name} sees in {image.name}")


DRAW = {"samples": draw_samples, "predictions": draw_predictions, "errors": draw_errors,
        "confusion": draw_confusion, "history": draw_history, "filters": draw_filters}
