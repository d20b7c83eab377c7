"""axe-core, the accessibility engine the browser tests run in Chromium: one file of the npm
package at a pinned version, fetched once into the cache the browser runtime uses
(``$XDG_CACHE_HOME/digitnet/axe-core-<version>/``, default ``~/.cache``) and checked against its
SHA-256 before it lands.

``python tests/web/axe_core.py`` fetches it (``make test`` does, so that the suite stays offline).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from digitnet import atomic, npm
from digitnet.datasets.sources import cache_dir
from digitnet.errors import DigitnetError

PACKAGE = "axe-core"
VERSION = "4.14.1"
FILE = "axe.min.js"
SIZE, SHA256 = 653_780, "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
NAME = f"{PACKAGE} {VERSION}"


def path() -> Path:
    return cache_dir(f"{PACKAGE}-{VERSION}") / FILE


def cached() -> Path | None:
    """The script when it is in the cache at its size (its checksum was checked on arrival)."""
    where = path()
    return where if where.is_file() and where.stat().st_size == SIZE else None


def missing() -> str:
    """Why there is no axe-core, and the fix."""
    return (f"{NAME} is not in {path().parent}; fetch it once with 'make axe-core' "
            "(needs npm and the npm registry)")


def fetch() -> Path:
    data = npm.pack_files(f"{PACKAGE}@{VERSION}", [FILE])[FILE]
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise DigitnetError(f"{PACKAGE}@{VERSION} from npm: {FILE} is not the file this version "
                            "should have (checksum differs); try again later")
    atomic.write_bytes(path(), data)
    return path()


def main() -> int:
    try:
        where = cached() or fetch()
    except DigitnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{NAME} is in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
