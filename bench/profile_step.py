"""Where a training step's time goes: the default epoch's step under torch.profiler.

    python bench/profile_step.py [--steps 200] [--rounds 6] [--threads N] [--set KEY=VALUE]

Trains the model of ``digitnet train`` (its defaults, or ``--set precision=fp32`` and so on) on
MNIST with ``train_step``, the step ``digitnet train`` takes, twice in one process: as digitnet
builds it, and as stock PyTorch would (``nn.Dropout``, no hooks on the gradients' memory
layout). It prints:

- each one's step time, wall and process CPU (the CPU time is steadier when other jobs share
  the cores), medians of ``--rounds`` blocks of ``--steps`` steps, the two interleaved;
- one profiled block of each, every operator's own time (its "self" time) summed into kinds:
  convolutions, dense layers, the optimizer, the loss, dropout's random masks, the other
  element-wise work (ReLU, pooling, applying dropout), casts and layout copies, batching the
  data, compiled (fused) kernels, dispatch (operator wrappers, autograd bookkeeping) and the
  Python between operators (the step's wall time not inside any operator);
- the arithmetic floor: the step's multiply-adds at the rate a large matrix product reaches
  on this machine, in bf16 and fp32, with the threads the step uses.

The machine's load average is printed beside the figures; on shared cores, compare only
figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from digitnet.benchmarks.runner import cpu_model
from digitnet.datasets import load
from digitnet.models import Dropout, build_model, count_parameters
from digitnet.runs.config import TrainConfig
from digitnet.training.epoch import epoch_order, make_optimizer, train_step
from digitnet.training.run import build_learner, make_split, set_up

# Operator name (as torch.profiler shows it) -> the kind of work it is. Anything not listed is
# dispatch: wrappers such as aten::conv2d, autograd nodes, allocation, views.
KINDS = {
    "convolutions": ("aten::mkldnn_convolution", "aten::convolution_backward",
                     "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward"),
    "dense layers": ("aten::mm", "aten::addmm", "aten::bmm"),
    "optimizer": ("aten::_fused_adam_", "aten::_foreach_", "Optimizer.", "aten::_fused_adamw_",
                  "aten::_fused_sgd_", "aten::lerp", "aten::addcmul", "aten::sqrt"),
    "loss": ("aten::_log_softmax", "aten::nll_loss", "aten::_log_softmax_backward_data"),
    "dropout masks": ("aten::bernoulli", "aten::uniform_", "aten::random_", "aten::rand"),
    "ReLU, pooling, dropout": ("aten::clamp_min", "aten::threshold_backward", "aten::relu",
                               "aten::max_pool2d", "aten::mul", "aten::div", "aten::masked_fill",
                               "aten::where", "aten::lt", "aten::ge", "aten::le",
                               "aten::add", "aten::sum", "aten::fill_", "aten::zero_"),
    "casts and layout copies": ("aten::copy_", "aten::_to_copy", "aten::clone",
                                "aten::contiguous"),
    "batching the data": ("aten::index", "aten::slice", "aten::tensor_split"),
    "compiled (fused) kernels": ("graph_", "## Call CompiledFxGraph", "CompiledFunction",
                                 "Torch-Compiled Region", "TorchDynamo Cache Lookup"),
}


def kind_of(name: str) -> str:
    for kind, prefixes in KINDS.items():
        if name.startswith(prefixes):
            return kind
    return "dispatch"


def step_flops(batch: int) -> float:
    """Multiply-adds x 2 of one forward and backward step of the tutorial model at ``batch``.

    conv2 (32 -> 32 channels, 3x3, 24x24 outputs) dominates; conv1's input needs no gradient,
    so its backward is the weight gradient only; dense1 is 4608 -> 128.
    """
    conv1 = 2 * 26 * 26 * 32 * 9  # one image's forward
    conv2 = 2 * 24 * 24 * 32 * 32 * 9
    dense = 2 * (4608 * 128 + 128 * 10)
    return batch * (2 * conv1 + 3 * conv2 + 3 * dense)


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large square matrix product: what the step's arithmetic could reach."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start))
    return max(rates)  # the least disturbed repetition: a floor is a best case


def stock_learner(config: TrainConfig, setup) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model as stock PyTorch builds it: torch's own dropout, no gradient layout hooks."""
    model = build_model(config.model, **config.model_kwargs())
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, torch.nn.Dropout(child.p))
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, make_optimizer(config, model.parameters(), setup.device)


def timed(step, starts: range) -> tuple[float, float]:
    """(wall ms, process CPU ms) per step over the steps starting at ``starts``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in starts:
        step(i)
    n = len(starts)
    return (time.perf_counter() - wall) * 1e3 / n, (time.process_time() - cpu) * 1e3 / n


def profile_block(step, starts: range) -> tuple[dict[str, float], float]:
    """Milliseconds per step of each kind of work, and the profiled step's wall time."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = time.perf_counter()
        for i in starts:
            step(i)
        wall = time.perf_counter() - wall
    per_kind: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        per_kind[kind_of(event.key)] += event.self_cpu_time_total / 1e3  # ms
    n = len(starts)
    table = {kind: ms / n for kind, ms in per_kind.items()}
    table["Python between operators"] = max(0.0, wall * 1e3 / n - sum(table.values()))
    return table, wall * 1e3 / n


def parse_config(items: list[str], threads: int) -> TrainConfig:
    defaults, values = TrainConfig(), {}
    for item in items:
        key, _, text = item.partition("=")
        kind = type(getattr(defaults, key))
        values[key] = text.lower() in ("1", "true", "yes") if kind is bool else kind(text)
    return TrainConfig(threads=threads, **values)


def measure(steps: dict, n: int, rounds: int) -> dict[str, dict]:
    """Each step function's medians over ``rounds`` blocks of ``n`` steps, the blocks of all
    of them interleaved (so they see the same machine), then one profiled block each."""
    blocks: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    position = 30
    for step in steps.values():
        timed(step, range(0, position))  # warm-up: oneDNN builds its kernels on first use
    for r in range(rounds):
        for name in list(steps) if r % 2 == 0 else list(steps)[::-1]:
            blocks[name].append(timed(steps[name], range(position, position + n)))
        position += n
    out = {}
    for name, step in steps.items():
        kinds, profiled = profile_block(step, range(position, position + n))
        out[name] = {"step_ms": statistics.median(w for w, _ in blocks[name]),
                     "step_cpu_ms": statistics.median(c for _, c in blocks[name]),
                     "profiled_step_ms": profiled,
                     "kinds_ms": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}
    return out


def print_report(report: dict) -> None:
    names = list(report["steps"])
    print(f"{report['cpu']}, {report['threads']} threads, load average "
          f"{', '.join(f'{v:.2f}' for v in report['load_average'])}")
    print(f"precision {report['precision']}, channels-last {report['channels_last']}, batch "
          f"{report['batch_size']}, {report['rounds']} interleaved blocks of {report['steps_per_block']} "
          "steps, medians")
    for name, row in report["steps"].items():
        print(f"{name:8s} step {row['step_ms']:6.2f} ms wall, {row['step_cpu_ms']:6.2f} ms CPU, "
              f"{row['step_cpu_ms'] / report['steps'][names[0]]['step_cpu_ms']:.2f}x CPU of "
              f"{names[0]}")
    kinds = list(report["steps"][names[-1]]["kinds_ms"])
    print(f"{'profiled, ms per step':28s}" + "".join(f"{n:>16s}" for n in names))
    for kind in kinds:
        cells = []
        for name in names:
            row = report["steps"][name]
            ms = row["kinds_ms"].get(kind, 0.0)
            cells.append(f"{ms:7.2f} ({ms / row['profiled_step_ms']:5.1%})")
        print(f"{kind:28s}" + "".join(f"{c:>16s}" for c in cells))
    print(f"{'total (profiled)':28s}" + "".join(
        f"{report['steps'][n]['profiled_step_ms']:7.2f}         " for n in names))
    floors = report["floor_ms"]
    print(f"floor: {report['step_gflop']:.2f} GFLOP per step = {floors['bf16']:.2f} ms in bf16, "
          f"{floors['fp32']:.2f} ms in fp32 at this machine's matmul rate with "
          f"{report['threads']} threads")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=6, help="timed blocks of each step")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig value, e.g. precision=fp32")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    config = parse_config(args.set, args.threads)
    setup = set_up(config)
    split = make_split(load(config.dataset, args.data_dir), config, setup.device)
    learner = build_learner(config, setup)
    models = {"stock": stock_learner(config, setup),
              "digitnet": (learner.model, learner.optimizer)}
    order = epoch_order(len(split.x_train), config.seed, 0)
    xs, ys = split.x_train[order], split.y_train[order]
    b = config.batch_size

    def stepper(model, optimizer):
        def step(i: int) -> None:
            i %= len(xs) // b
            train_step(model, optimizer, xs[i * b:(i + 1) * b], ys[i * b:(i + 1) * b], b,
                       setup.autocast, config.label_smoothing, 1)
        return step

    steps = measure({name: stepper(*mo) for name, mo in models.items()}, args.steps, args.rounds)
    flops = step_flops(b)
    report = {
        "cpu": cpu_model(), "threads": setup.threads, "load_average": os.getloadavg(),
        "precision": setup.precision, "channels_last": setup.channels_last, "batch_size": b,
        "parameters": count_parameters(learner.model), "rounds": args.rounds,
        "steps_per_block": args.steps, "steps": steps, "step_gflop": flops / 1e9,
        "floor_ms": {name: flops / matmul_rate(dtype) * 1e3
                     for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))},
    }
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
