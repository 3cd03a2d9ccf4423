"""Export a trained detector to TorchScript or ONNX, with the metadata it needs to drive.

Exported files take what the live loop has: uint8 images ``(B, H, W, 3)`` in
BGR order at the model's input size (normalisation is inside the graph, see
robot_ssl.learning.models.normalize_images) and return obstacle probabilities
``(B, S, D)`` (the sigmoid is inside too). Each file carries its ModelConfig and the
camera viewpoint of its training sessions as JSON (robot_ssl.inference.predictor.ModelMeta:
ONNX metadata ``robot_ssl``, TorchScript extra file ``robot_ssl.json``), so a model file
is self-describing and `run` can refuse a camera it was not trained for. Every export is
checked against the PyTorch model before it is written: maximum absolute difference of
probabilities below 1e-4.

Damaged model files are refused, never run (robot_ssl.inference.integrity): the zip
archive of a checkpoint or TorchScript file has every member's CRC-32 checked
before torch reads it, and an ONNX file carries a SHA-256 of its content in
``metadata_props`` (key ``robot_ssl_sha256``, written here at export) that is
checked before ONNX Runtime sees the bytes. Loading a file also checks
that the file agrees with its own metadata (ONNX input and output shapes, one
inference on a blank image giving a (1, S, D) grid) so that a mismatch is found
when the model is opened, not at the first camera frame.

robot_ssl.inference.predictor.load_predictor runs an ONNX file without torch or a GPU (what a
Raspberry Pi runs); robot_ssl.learning.torch_predictor opens any of the three kinds.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.outputs import OutputError, atomic_output, check_writable, write_error
from robot_ssl.inference.integrity import stamp_onnx_checksum
from robot_ssl.inference.predictor import (
    INPUT_NAME,
    META_FILE,
    META_KEY,
    OUTPUT_NAME,
    ModelFileError,
    ModelMeta,
)
from robot_ssl.inference.preprocess import prepare_images
from robot_ssl.learning.torch_predictor import load_any_predictor, torchscript_quietly

__all__ = ["FORMATS", "ExportError", "export_model"]

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
ONNX_OPSET = 17


class ExportError(ModelFileError):
    """A model cannot be exported, or its export fails the parity check."""


def _probability_model(model: Any) -> Any:
    """Wrap a logit network so that it returns probabilities (what exported files compute)."""
    import torch

    class ProbabilityModel(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.net(x))

    return ProbabilityModel(model).eval()


def export_model(
    model_path: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    check_images: np.ndarray | None = None,
    tolerance: float = 1e-4,
) -> Path:
    """Export a checkpoint to `fmt` ("torchscript" or "onnx"); returns the written path.

    `out` defaults to the checkpoint's path with suffix .ts or .onnx. The
    exported model is run on `check_images` (BGR uint8, any size; prepared
    like in training) plus a fixed random batch and compared with the
    PyTorch model; a difference above `tolerance` raises ExportError and
    nothing is written. A damaged checkpoint raises ModelIntegrityError; an
    output folder that cannot be written raises OutputError before any work, a disk that
    fills up while writing an OutputError after (and no file).
    """
    import torch

    from robot_ssl.learning.checkpoint import Checkpoint
    from robot_ssl.learning.models import network_of

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model_path = Path(model_path)
    out = Path(out) if out is not None else model_path.with_suffix(SUFFIXES[fmt])
    if out.is_dir():
        raise ExportError(f"{out} is a folder; name the file to write")
    if not (tolerance > 0 and np.isfinite(tolerance)):
        raise ExportError(f"tolerance must be a finite number > 0, got {tolerance}")
    check_writable(out.parent)
    ckpt = Checkpoint.load(model_path)
    cfg = ckpt.model_config
    wrapped = _probability_model(network_of(ckpt, model_path))
    w, h = cfg.input_size
    rng = np.random.default_rng(0)
    check = [rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)]
    if check_images is not None and len(check_images):
        check.append(prepare_images(check_images, cfg.input_size))
    check_batch = np.concatenate(check)
    example = torch.from_numpy(check_batch[:2])
    meta = ModelMeta(cfg, ckpt.viewpoint, model_path.name).to_json()
    with atomic_output(out) as tmp:
        try:
            if fmt == "torchscript":
                with torch.no_grad(), torchscript_quietly():
                    traced = torch.jit.trace(wrapped, example)
                    frozen = torch.jit.freeze(traced)
                    with tmp.open("wb") as f:  # members "archive/...", not the temporary name
                        torch.jit.save(frozen, f, _extra_files={META_FILE: meta})
            else:
                _export_onnx(wrapped, example, tmp, meta)
        except OutputError:
            raise
        except OSError as e:  # a full disk: one line, and the temporary file is removed
            raise write_error(out, e) from None
        predictor = load_any_predictor(tmp, kind=fmt, num_threads=None)
        with torch.inference_mode():
            expected = wrapped(torch.from_numpy(check_batch)).numpy()
        got = predictor.predict(check_batch)
        diff = float(np.max(np.abs(got - expected)))
        if not diff < tolerance:
            raise ExportError(
                f"{fmt} export differs from the PyTorch model by {diff:.2e} (> {tolerance:g})"
            )
    return out


def _export_onnx(wrapped: Any, example: Any, path: Path, meta: str) -> None:
    """ONNX via the TorchScript-based exporter (no onnxscript needed), with metadata."""
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notice of the TorchScript-based exporter
        torch.onnx.export(
            wrapped,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, meta
    onnx.checker.check_model(proto)
    # the content checksum goes last: robot_ssl.inference.integrity.check_onnx verifies it at every load
    path.write_bytes(stamp_onnx_checksum(proto.SerializeToString()))
