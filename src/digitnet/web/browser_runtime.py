"""The runtime that reads digits in a browser: onnxruntime-web's plain WebAssembly build
(not WebGPU), at a pinned version, fetched once from the npm registry into a cache.

Only three files of the package are needed (about 14 MB): the module the page imports, the
loader it imports in turn, and the WebAssembly engine. Each is checked against its SHA-256
before it lands, and again whenever the cache is used (``cached``): a file of the right size
but other content is never served or copied into a site. The cache is
``$XDG_CACHE_HOME/digitnet/onnxruntime-web-<version>/`` (default ``~/.cache``), or the folder
``$DIGITNET_ONNXRUNTIME_WEB`` names. That folder is only ever replaced whole, by a checked copy,
and only when it holds nothing but the runtime's files: a folder with anything else in it is
refused, never emptied.

``python -m digitnet.web.browser_runtime`` fetches it (``make test`` does, so that the browser
tests of on-device reading can run offline).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from digitnet import npm
from digitnet.datasets.sources import cache_dir
from digitnet.errors import DigitnetError

PACKAGE = "onnxruntime-web"
VERSION = "1.30.0"
MODULE = "ort.wasm.min.mjs"  # what the page imports; it loads the other two
# file in the package's dist/ -> (size, SHA-256)
FILES = {
    MODULE: (50_126, "219e6a1fc8a9938268d18efca3c91d310bd2f4a59bbd13744df5b2b7fc6cee3b"),
    "ort-wasm-simd-threaded.mjs":
        (24_381, "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b"),
    "ort-wasm-simd-threaded.wasm":
        (14_239_897, "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2"),
}
ENV = "DIGITNET_ONNXRUNTIME_WEB"
NAME = f"{PACKAGE} {VERSION}"


def folder() -> Path:
    """Where the runtime's files are kept."""
    override = os.environ.get(ENV)
    return Path(override).expanduser() if override else cache_dir(f"{PACKAGE}-{VERSION}")


def intact(where: Path) -> bool:
    """Whether ``where`` holds the three files, each with its size and SHA-256."""
    for name, (size, sha256) in FILES.items():
        path = where / name
        try:
            if path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
                return False
        except OSError:
            return False
    return True


def cached() -> Path | None:
    """The folder when it holds the three files, checked (size and SHA-256), else None."""
    where = folder()
    return where if intact(where) else None


def missing() -> str:
    """Why on-device reading has no runtime, and the fix (for the server's operator)."""
    return (f"the browser runtime ({NAME}) is not in {folder()} or is not intact; fetch it with "
            "'python -m digitnet.web.browser_runtime' (needs npm and the npm registry)")


def _replaceable(where: Path) -> bool:
    """A folder ``fetch`` may replace: absent, or holding only the runtime's own files."""
    if not where.exists():
        return True
    return where.is_dir() and not where.is_symlink() and all(
        p.name in FILES and p.is_file() for p in where.iterdir())


def fetch() -> Path:
    """Fetch the three files through npm, check them and put them in place together: they are
    written into a temporary folder beside the cache, which is then renamed into place."""
    where = folder()
    if not _replaceable(where):
        raise DigitnetError(f"{where} holds other files than {NAME}'s; point {ENV} at a new or "
                            "empty folder (nothing in it was changed)")
    files = npm.pack_files(f"{PACKAGE}@{VERSION}", [f"dist/{name}" for name in FILES])
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=f".{where.name}."))
    try:
        for name, (_, sha256) in FILES.items():
            data = files[f"dist/{name}"]
            if hashlib.sha256(data).hexdigest() != sha256:
                raise DigitnetError(f"{PACKAGE}@{VERSION} from npm: dist/{name} is not the file "
                                    "this version should have (checksum differs); try again later")
            (tmp / name).write_bytes(data)
        if where.exists():  # an earlier copy, damaged or incomplete: moved aside, then removed
            if not _replaceable(where):
                raise DigitnetError(f"{where} changed while fetching; try again")
            old = where.rename(tmp.parent / f"{tmp.name}.old")
            tmp.rename(where)
            for path in old.iterdir():
                path.unlink()
            old.rmdir()
        else:
            tmp.rename(where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return where


def ensure() -> Path:
    """The folder with the runtime, fetched first if it is not there yet."""
    return cached() or fetch()


def main() -> int:
    try:
        where = ensure()
    except DigitnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{NAME} is in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
