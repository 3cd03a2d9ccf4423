"""Export a trained detector (TorchScript, ONNX) and run any model file through one interface.

Exported files take what the live loop has: uint8 images ``(B, H, W, 3)`` in
BGR order at the model's input size (normalisation is inside the graph, see
robot_ssl.learning.models.normalize_images) and return obstacle probabilities
``(B, S, D)`` (the sigmoid is inside too). Each file carries its ModelConfig as JSON (ONNX metadata
``robot_ssl``, TorchScript extra file ``robot_ssl.json``), so a model file is
self-describing. Every export is checked against the PyTorch model before it
is written: maximum absolute difference of probabilities below 1e-4.

Damaged model files are refused, never run (robot_ssl.io.integrity): the zip
archive of a checkpoint or TorchScript file has every member's CRC-32 checked
before torch reads it, and an ONNX file carries a SHA-256 of its content in
``metadata_props`` (key ``robot_ssl_sha256``, written here at export) that is
checked before ONNX Runtime sees the bytes. :func:`load_predictor` also checks
that the file agrees with its own metadata (ONNX input and output shapes, one
inference on a blank image giving a (1, S, D) grid) so that a mismatch is found
when the model is opened, not at the first camera frame.

:func:`load_predictor` opens a checkpoint (``.pt``), a TorchScript file or an
ONNX file and gives a :class:`Predictor` whose ``predict(images)`` applies
exactly the training preprocessing (robot_ssl.learning.dataset.prepare_images). The
ONNX path needs neither torch nor a GPU: this is what a Raspberry Pi runs.
"""

from __future__ import annotations

import contextlib
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.io.integrity import (
    ModelIntegrityError,
    check_onnx,
    check_zip,
    one_line,
    stamp_onnx_checksum,
)
from robot_ssl.io.outputs import atomic_output, check_writable
from robot_ssl.learning.dataset import prepare_images
from robot_ssl.learning.models import ModelConfig

__all__ = [
    "FORMATS",
    "ExportError",
    "ModelIntegrityError",
    "Predictor",
    "export_model",
    "load_predictor",
]

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
META_KEY = "robot_ssl"
META_FILE = "robot_ssl.json"
INPUT_NAME, OUTPUT_NAME = "image_bgr", "prob"
ONNX_OPSET = 17


class ExportError(RobotSSLError):
    """A model cannot be exported, fails the parity check, or a model file cannot be loaded."""


@contextlib.contextmanager
def _torchscript_quietly() -> Iterator[None]:
    """Silence torch's deprecation notices for torch.jit: TorchScript is asked for explicitly.

    (PyTorch deprecates TorchScript in favour of torch.export; ONNX is the
    recommended runtime here, TorchScript stays for torch-only deployments.)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit")
        yield


def _metadata(cfg: ModelConfig, source: str) -> str:
    return json.dumps(
        {
            "format": "robot-ssl/detector",
            "version": 1,
            "model_config": cfg.to_dict(),
            "source": source,
            "input": "uint8 (B, H, W, 3) BGR at (input_height, input_width)",
            "output": "float32 (B, S, D) obstacle probability",
        }
    )


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
    output folder that cannot be written raises OutputError before any work.
    """
    import torch

    from robot_ssl.learning.models import model_from_checkpoint

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model_path = Path(model_path)
    out = Path(out) if out is not None else model_path.with_suffix(SUFFIXES[fmt])
    if out.is_dir():
        raise ExportError(f"{out} is a folder; name the file to write")
    if not (tolerance > 0 and np.isfinite(tolerance)):
        raise ExportError(f"tolerance must be a finite number > 0, got {tolerance}")
    check_writable(out.parent)
    model, cfg = model_from_checkpoint(model_path)
    wrapped = _probability_model(model)
    w, h = cfg.input_size
    rng = np.random.default_rng(0)
    check = [rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)]
    if check_images is not None and len(check_images):
        check.append(prepare_images(check_images, cfg.input_size))
    check_batch = np.concatenate(check)
    example = torch.from_numpy(check_batch[:2])
    meta = _metadata(cfg, model_path.name)
    with atomic_output(out) as tmp:
        if fmt == "torchscript":
            with torch.no_grad(), _torchscript_quietly():
                traced = torch.jit.trace(wrapped, example)
                frozen = torch.jit.freeze(traced)
                with tmp.open("wb") as f:  # members "archive/...", not the temporary name
                    torch.jit.save(frozen, f, _extra_files={META_FILE: meta})
        else:
            _export_onnx(wrapped, example, tmp, meta)
        predictor = load_predictor(tmp, kind=fmt, num_threads=None)
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
    # the content checksum goes last: robot_ssl.io.integrity.check_onnx verifies it at every load
    path.write_bytes(stamp_onnx_checksum(proto.SerializeToString()))


# -- runtime -------------------------------------------------------------------------------


class Predictor:
    """A loaded detector: `predict(images) -> probabilities (B, S, D)`.

    `images`: one BGR uint8 image (H, W, 3), a batch (B, H, W, 3) or a list, at
    any resolution; they are prepared exactly as in training
    (robot_ssl.learning.dataset.prepare_images). `preprocess` and `infer` are the two
    halves of `predict`, for callers that time them separately (the live
    loop). Subclasses implement `_run` on a prepared uint8 batch.
    """

    kind = "abstract"

    def __init__(self, path: Path, config: ModelConfig) -> None:
        self.path = path
        self.config = config

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the network expects."""
        return self.config.input_size

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.config.num_sensors, self.config.num_distances

    def preprocess(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """BGR uint8 image(s) of any size -> the network's uint8 batch (B, h, w, 3)."""
        return prepare_images(images, self.input_size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (B, S, D) float32 for a batch already prepared by `preprocess`."""
        if len(batch) == 0:
            return np.zeros((0, *self.grid_shape), np.float32)
        return np.asarray(self._run(np.ascontiguousarray(batch)), dtype=np.float32)

    def predict(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """`infer(preprocess(images))`: probabilities (B, S, D) for BGR uint8 images."""
        return self.infer(self.preprocess(images))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _TorchPredictor(Predictor):
    """A checkpoint or TorchScript module; probabilities via sigmoid where needed."""

    def __init__(self, path: Path, config: ModelConfig, module: Any, kind: str) -> None:
        super().__init__(path, config)
        self.module = module
        self.kind = kind

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch))
            if self.kind == "checkpoint":
                out = torch.sigmoid(out)
            return out.float().numpy()


class _OnnxPredictor(Predictor):
    kind = "onnx"

    def __init__(self, path: Path, config: ModelConfig, session: Any) -> None:
        super().__init__(path, config)
        self.session = session

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def _sniff_kind(path: Path) -> str:
    """'onnx', 'torchscript' or 'checkpoint' from the suffix or the zip archive's contents."""
    if path.suffix == ".onnx":
        return "onnx"
    try:
        with path.open("rb") as f:
            head = f.read(16)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
            if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                return "torchscript"
            return "checkpoint"
    except OSError as e:
        raise ExportError(f"cannot read {path}: {e.strerror or e}") from None
    except zipfile.BadZipFile as e:
        raise ModelIntegrityError(f"{path}: damaged zip archive ({one_line(e, 80)})") from None
    if head[:4] == b"PK\x03\x04":  # a zip archive whose central directory is gone
        raise ModelIntegrityError(f"{path}: damaged model file (truncated zip archive)")
    if head[:1] == b"\x08":  # ONNX ModelProto starts with field 1 (ir_version), varint
        return "onnx"
    raise ExportError(f"{path}: not a checkpoint, TorchScript or ONNX file")


def load_predictor(
    path: str | Path, *, kind: str | None = None, num_threads: int | None = 1
) -> Predictor:
    """Open a model file for inference; `kind` overrides detection by file type.

    `num_threads` is ONNX Runtime's intra-op thread count, or torch's
    (`torch.set_num_threads`, process-wide) for checkpoints and TorchScript;
    None keeps the runtime's default. The default 1 suits the robot's loop.

    The file's integrity is checked first (robot_ssl.io.integrity: zip CRCs, the
    ONNX checksum; ModelIntegrityError), then its agreement with its metadata
    (ExportError): both in one line, before the caller opens any device.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such model file: {path}")
    kind = kind or _sniff_kind(path)
    if kind in ("onnx",):
        predictor = _load_onnx(path, num_threads)
    elif kind in ("torchscript", "checkpoint"):
        predictor = _load_torch(path, kind, num_threads)
    else:
        raise ExportError(f"unknown model kind {kind!r}")
    _self_test(predictor)
    return predictor


def _load_torch(path: Path, kind: str, num_threads: int | None) -> Predictor:
    import torch

    if num_threads is not None:
        torch.set_num_threads(num_threads)
    if kind == "checkpoint":
        from robot_ssl.learning.models import model_from_checkpoint

        model, cfg = model_from_checkpoint(path)  # checks the archive's CRCs first
        return _TorchPredictor(path, cfg, model, "checkpoint")
    check_zip(path, "TorchScript file")
    extra = {META_FILE: ""}
    try:
        with _torchscript_quietly():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:  # RuntimeError, or a torch-internal error for foreign archives
        raise ExportError(f"{path}: not a loadable TorchScript file ({one_line(e)})") from None
    cfg = _config_from_meta(extra[META_FILE], path)
    return _TorchPredictor(path, cfg, module.eval(), "torchscript")


def _self_test(predictor: Predictor) -> None:
    """One inference on a blank image: the output must be a finite (1, S, D) grid."""
    w, h = predictor.input_size
    try:
        out = predictor.infer(np.zeros((1, h, w, 3), np.uint8))
    except Exception as e:  # runtimes raise their own types for shape mismatches
        raise ExportError(
            f"{predictor.path}: the model does not run on its metadata's {w}x{h} input "
            f"({one_line(e, 160)})"
        ) from None
    want = (1, *predictor.grid_shape)
    if out.shape != want:
        raise ExportError(
            f"{predictor.path}: the model outputs {tuple(out.shape)} for one image, its "
            f"metadata says {want} (batch, sensors, distances)"
        )
    if not np.all(np.isfinite(out)):
        raise ExportError(f"{predictor.path}: the model outputs non-finite values (NaN or inf)")


def _config_from_meta(meta: str | bytes, path: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(json.loads(meta)["model_config"])
    except (ValueError, KeyError, TypeError, RobotSSLError) as e:
        raise ExportError(f"{path}: missing or bad robot-ssl metadata ({one_line(e)})") from None


def _load_onnx(path: Path, num_threads: int | None) -> Predictor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("onnxruntime is not installed (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings on stderr
    data = check_onnx(path)  # the checksum written at export; ORT gets the verified bytes
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ExportError(f"{path}: cannot load ONNX model ({one_line(e)})") from None
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if meta is None:
        raise ExportError(f"{path}: ONNX file has no robot_ssl metadata")
    cfg = _config_from_meta(meta, path)
    _check_onnx_io(path, session, cfg)
    return _OnnxPredictor(path, cfg, session)


def _check_onnx_io(path: Path, session: Any, cfg: ModelConfig) -> None:
    """The graph's input (B, H, W, 3) uint8 and output (B, S, D) must match the metadata."""

    def shape(arg: Any) -> str:
        return "(" + ", ".join(str(d) for d in arg.shape) + ")"

    def fits(dims: list, want: tuple) -> bool:  # symbolic or unknown dims fit anything
        return len(dims) == len(want) and all(
            not isinstance(d, int) or w is None or d == w for d, w in zip(dims, want)
        )

    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = ([i.name for i in inputs], [o.name for o in outputs])
    if names != ([INPUT_NAME], [OUTPUT_NAME]):
        raise ExportError(
            f"{path}: ONNX graph has inputs {names[0]} and outputs {names[1]}, expected "
            f"[{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]"
        )
    want_in = (None, cfg.input_height, cfg.input_width, 3)
    if inputs[0].type != "tensor(uint8)" or not fits(list(inputs[0].shape), want_in):
        raise ExportError(
            f"{path}: ONNX input is {inputs[0].type} {shape(inputs[0])}, its metadata says "
            f"tensor(uint8) (batch, {cfg.input_height}, {cfg.input_width}, 3)"
        )
    want_out = (None, cfg.num_sensors, cfg.num_distances)
    if not fits(list(outputs[0].shape), want_out):
        raise ExportError(
            f"{path}: ONNX output is {shape(outputs[0])}, its metadata says "
            f"(batch, {cfg.num_sensors}, {cfg.num_distances})"
        )
