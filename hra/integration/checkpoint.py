"""Checkpoints of the building chunks: a killed run restarted with the same config resumes.

Each finished chunk of buildings is saved as one ``chunk-NNNNN.npz`` (written to a temporary
name, then renamed: a file that exists is complete) in a checkpoint folder beside the run's
first output, ``.<name>.partial/`` (e.g. ``.risk.zarr.partial/`` beside ``risk.zarr``). The
folder's ``key.json`` holds the run key: the config hash (:meth:`hra.config.Config.sha256`), the
SHA-256 of every input file and model table, the package version and git revision, the number of
buildings and the chunk size. A run whose key differs (a changed config, input or code) never
reads the chunks of another: it empties the folder first. The folder is removed after the outputs
of the run are committed (:func:`hra.api.run`). The tables come from the table store
(:mod:`hra.integration.tablestore`), so a restarted run recomputes neither.

Chunk results are stored bit for bit (float64 ``.npz``), and the result of a chunk depends only on
its buildings (:mod:`hra.integration.engine`), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hra.core.fileio import clean_stale, owner_tag

log = logging.getLogger("hra")

KEY_FILE = "key.json"


def checkpoint_folder(output: str | os.PathLike) -> Path:
    """The checkpoint folder of a run whose first output is ``output``: ``.<name>.partial`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.partial")


def run_key(cfg, files: dict[str, str], n_buildings: int, chunk_size: int, layout: str = "") -> dict[str, Any]:
    """What decides the chunk results: config hash, input checksums, code version, chunking
    (``layout``: a digest of the chunks' building indices when they are not consecutive, i.e. when
    the zones are computed in groups, :func:`hra.integration.engine.zone_groups`)."""
    import hra.outputs as outputs

    git = outputs.git_revision()
    key = {"config_sha256": cfg.sha256(), "input_sha256": dict(sorted(files.items())),
           "package_version": outputs.package_version(), "git_revision": git, "n_buildings": int(n_buildings),
           "chunk_buildings": int(chunk_size)}
    if layout:
        key["chunk_layout_sha256"] = layout
    return key


class Checkpoint:
    """The checkpoint folder of one run (see the module docstring).

    Parameters
    ----------
    folder
        The folder (created; emptied when it holds another run's chunks). [folder path]
    key
        The run key (:func:`run_key`).
    """

    def __init__(self, folder: str | os.PathLike, key: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.key = key
        self.digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.saved = 0
        try:
            held = json.loads((self.folder / KEY_FILE).read_text()).get("digest")
        except (OSError, ValueError, AttributeError):
            held = None
        if held != self.digest:
            if self.folder.exists():
                log.info("checkpoint %s holds another run's chunks: starting afresh", self.folder)
                shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(self.folder / KEY_FILE, lambda fh: fh.write(
                json.dumps({"digest": self.digest, "key": key}, sort_keys=True, indent=1, default=str).encode()))
        clean_stale(self.folder)  # temporaries of a killed run

    def _write(self, path: Path, write) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{owner_tag()}")
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _file(self, i: int) -> Path:
        return self.folder / f"chunk-{i:05d}.npz"

    def done(self, n_chunks: int) -> list[int]:
        """Indices of the chunks already saved (of ``n_chunks``)."""
        return [i for i in range(n_chunks) if self._file(i).is_file()]

    def save(self, i: int, result: dict[str, np.ndarray]) -> None:
        """Save the result of chunk ``i`` (atomic). A chunk that cannot be saved (disk full, the
        folder removed by a concurrent run of the same key) is only logged: the run goes on."""
        try:
            self._write(self._file(i), lambda fh: np.savez(fh, **result))
        except OSError as exc:
            log.warning("cannot save the checkpoint of building chunk %d in %s (%s); the run goes on", i, self.folder,
                        exc)
        self.saved += 1

    def load(self, i: int) -> dict[str, np.ndarray] | None:
        """The saved result of chunk ``i``; ``None`` where it cannot be read (then it is recomputed)."""
        try:
            with np.load(self._file(i)) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            log.warning("checkpoint %s unreadable (%s): recomputing that chunk", self._file(i), exc)
            return None

    def remove(self) -> None:
        """Remove the folder (after the outputs are committed)."""
        shutil.rmtree(self.folder, ignore_errors=True)
