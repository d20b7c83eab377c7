"""The server's settings: one object, given to ``create_app`` and handed to worker processes."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from digitnet.corrections import store as corrections_store
from digitnet.errors import DigitnetError
from digitnet.inference.predictor import DEFAULT_BACKEND
from digitnet.web import admin


def default_concurrency() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    run_dir: Path  # the run whose model is served
    line_reader: Path | None = None  # the reader of whole numbers; None: the package's
    backend: str = DEFAULT_BACKEND  # a key of digitnet.inference.predictor.BACKENDS
    max_body_bytes: int = 5 * 1024 * 1024  # larger requests get 413 before they are read
    torch_threads: int = 1  # torch intra-op threads per inference; concurrency comes from requests
    max_concurrent: int = field(default_factory=default_concurrency)  # images processed at once
    # The folder of corrections.sqlite and served.json: with it, corrections are collected and
    # a run named in served.json is swapped in; without it, neither.
    store: Path | None = None
    admin_token: str | None = field(default=None, repr=False)  # None: the admin routes are off
    swap_check_s: float = 1.0  # how often served.json is looked at
    # Origins besides the page's own whose pages may change state here (POST corrections),
    # e.g. "https://digits.example.org", where the static site is hosted.
    allowed_origins: tuple[str, ...] = ()
    corrections_per_client: int = 30  # corrections one client may store per window...
    corrections_window_s: int = 600  # ...of this many seconds (429 beyond)
    max_store_bytes: int = 200 * 1024 * 1024  # the corrections database's size (507 beyond)

    def __post_init__(self) -> None:
        if self.admin_token is not None:
            admin.check_token(self.admin_token)  # an empty or short token never guards anything
        object.__setattr__(self, "allowed_origins", tuple(o.rstrip("/") for o in self.allowed_origins))

    @property
    def corrections_db(self) -> Path | None:
        return None if self.store is None else corrections_store.path_in(self.store)

    @property
    def limits(self) -> corrections_store.Limits:
        return corrections_store.Limits(self.corrections_per_client, self.corrections_window_s,
                                        self.max_store_bytes)

    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v
                           for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Settings from ``to_json``'s JSON; fields left out keep their defaults."""
        try:
            fields = json.loads(text)
            paths = {k: Path(fields[k]) for k in ("run_dir", "line_reader", "store") if fields.get(k)}
            origins = {"allowed_origins": tuple(fields.get("allowed_origins", ()))}
            return cls(**{**fields, **paths, **origins})
        except (ValueError, TypeError, KeyError) as e:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise DigitnetError(f"bad server settings {text[:80]!r} ({e}); give a JSON object with "
                                f"run_dir and any of {names}") from e
