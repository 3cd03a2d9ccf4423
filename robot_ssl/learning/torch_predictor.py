"""Any model file behind robot_ssl.inference's `Predictor` interface, torch where needed.

`load_any_predictor` opens a checkpoint (``.pt``, run by PyTorch), a TorchScript file
or an ONNX file (robot_ssl.inference.predictor.load_predictor, no torch); `open_predictor`
picks the fastest runtime for `run` (a checkpoint is exported to ONNX first). This module
imports torch only inside the functions that open a torch file, so `run --model x.onnx`
and `replay --model x.onnx` need no torch; the robot's own path is robot_ssl.inference.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.inference.integrity import check_zip, one_line
from robot_ssl.inference.predictor import (
    META_FILE,
    ModelFileError,
    ModelMeta,
    Predictor,
    load_predictor,
    self_test,
    sniff_kind,
)

__all__ = ["TorchPredictor", "load_any_predictor", "open_predictor", "torchscript_quietly"]


@contextlib.contextmanager
def torchscript_quietly() -> Iterator[None]:
    """Silence torch's deprecation notices for torch.jit: TorchScript is asked for explicitly.

    (PyTorch deprecates TorchScript in favour of torch.export; ONNX is the
    recommended runtime here, TorchScript stays for torch-only deployments.)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit")
        yield


class TorchPredictor(Predictor):
    """A checkpoint or TorchScript module; probabilities via sigmoid where needed.
    `module` may be replaced while running (the online learner publishes new weights)."""

    def __init__(self, path: Path, meta: ModelMeta, module: Any, kind: str) -> None:
        super().__init__(path, meta.config, meta.viewpoint)
        self.module = module
        self.kind = kind

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch))
            if self.kind == "checkpoint":
                out = torch.sigmoid(out)
            return out.float().numpy()


def load_any_predictor(
    path: str | Path, *, kind: str | None = None, num_threads: int | None = 1
) -> Predictor:
    """Open a checkpoint, TorchScript or ONNX file; `kind` overrides detection by file type.

    `num_threads` is ONNX Runtime's intra-op thread count, or torch's
    (`torch.set_num_threads`, process-wide) for checkpoints and TorchScript; None keeps
    the runtime's default. Integrity (ModelIntegrityError) and agreement with the file's
    metadata (ModelFileError) are checked as by robot_ssl.inference.predictor.load_predictor.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path}")
    kind = kind or sniff_kind(path)
    if kind == "onnx":
        return load_predictor(path, kind=kind, num_threads=num_threads)
    if kind not in ("torchscript", "checkpoint"):
        raise ModelFileError(f"unknown model kind {kind!r}")
    import torch

    if num_threads is not None:
        torch.set_num_threads(num_threads)
    predictor = _load_checkpoint(path) if kind == "checkpoint" else _load_torchscript(path)
    self_test(predictor)
    return predictor


def _load_checkpoint(path: Path) -> TorchPredictor:
    from robot_ssl.learning.checkpoint import Checkpoint
    from robot_ssl.learning.models import network_of

    ckpt = Checkpoint.load(path)  # checks the archive's CRCs first
    meta = ModelMeta(ckpt.model_config, ckpt.viewpoint, path.name)
    return TorchPredictor(path, meta, network_of(ckpt, path), "checkpoint")


def _load_torchscript(path: Path) -> TorchPredictor:
    import torch

    check_zip(path, "TorchScript file")
    extra = {META_FILE: ""}
    try:
        with torchscript_quietly():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:  # RuntimeError, or a torch-internal error for foreign archives
        raise ModelFileError(f"{path}: not a loadable TorchScript file ({one_line(e)})") from None
    meta = ModelMeta.from_json(extra[META_FILE], path)
    return TorchPredictor(path, meta, module.eval(), "torchscript")


def open_predictor(path: str | Path, num_threads: int = 1) -> tuple[Predictor, str]:
    """The fastest runtime for a model file: (predictor, one-line description).

    ONNX -> ONNX Runtime (no torch imported). A checkpoint is exported to ONNX in a
    temporary folder when onnx is importable (the session keeps the model in memory, so
    the folder is removed at once), else run by PyTorch; TorchScript runs by PyTorch.
    A damaged file is refused (ModelIntegrityError; never caught here, so a damaged
    checkpoint does not fall back to PyTorch), as is one that disagrees with its
    metadata: `run` calls this before it opens any device.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path}")
    kind = sniff_kind(path)
    if kind == "checkpoint":
        try:
            import onnx  # noqa: F401
        except ImportError:
            pass
        else:
            from robot_ssl.learning.export import ExportError, export_model

            try:
                with tempfile.TemporaryDirectory(prefix="robot-ssl-run-") as tmp:
                    onnx_path = export_model(path, "onnx", Path(tmp) / "model.onnx")
                    predictor = load_predictor(onnx_path, num_threads=num_threads)
                return predictor, f"{path.name} (checkpoint exported to ONNX Runtime)"
            except ExportError as e:
                print(f"robot-ssl: ONNX export failed ({e}); using PyTorch", file=sys.stderr)
    predictor = load_any_predictor(path, num_threads=num_threads)
    runtime = {"onnx": "ONNX Runtime", "torchscript": "TorchScript", "checkpoint": "PyTorch"}
    return predictor, f"{path.name} ({runtime.get(predictor.kind, predictor.kind)})"
