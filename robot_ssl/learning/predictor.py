"""Running a detector file: ONNX Runtime, TorchScript or a checkpoint behind one interface.

`load_predictor` opens a checkpoint (``.pt``), a TorchScript file or an ONNX file and
gives a :class:`Predictor` whose ``predict(images)`` applies exactly the training
preprocessing (robot_ssl.learning.dataset.prepare_images). This module imports no
torch: the ONNX path (what a Raspberry Pi runs) needs neither torch nor a GPU, and
torch is imported only to open a checkpoint or TorchScript file.

Damaged model files are refused, never run (robot_ssl.io.integrity: zip CRCs, the
ONNX checksum written at export), and a file that disagrees with its own metadata
(input and output shapes, one inference on a blank image) is refused when opened,
not at the first camera frame.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.io.integrity import ModelIntegrityError, check_onnx, check_zip, one_line
from robot_ssl.learning.dataset import prepare_images
from robot_ssl.learning.model_config import ModelConfig

__all__ = [
    "DEFAULT_DISTANCES_M",
    "ExportError",
    "ModelIntegrityError",
    "Predictor",
    "grid_distances",
    "grid_shape",
    "load_predictor",
    "open_predictor",
]

META_KEY = "robot_ssl"
META_FILE = "robot_ssl.json"
INPUT_NAME, OUTPUT_NAME = "image_bgr", "prob"
DEFAULT_DISTANCES_M = tuple(round(0.01 * i, 2) for i in range(31))


class ExportError(RobotSSLError):
    """A model cannot be exported, fails the parity check, or a model file cannot be loaded."""


@contextlib.contextmanager
def torchscript_quietly() -> Iterator[None]:
    """Silence torch's deprecation notices for torch.jit: TorchScript is asked for explicitly.

    (PyTorch deprecates TorchScript in favour of torch.export; ONNX is the
    recommended runtime here, TorchScript stays for torch-only deployments.)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit")
        yield


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
        with torchscript_quietly():
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


def open_predictor(path: str | Path, num_threads: int = 1) -> tuple[Any, str]:
    """The fastest runtime for a model file: (predictor, one-line description).

    ONNX -> ONNX Runtime. A checkpoint is exported to ONNX in a temporary folder when
    onnx/onnxruntime are importable (the session keeps the model in memory, so the
    folder is removed at once), else run by PyTorch; TorchScript runs by PyTorch.
    Every path goes through load_predictor, which refuses a damaged
    file (ModelIntegrityError: zip CRCs, the ONNX checksum; never caught here, so a
    damaged checkpoint does not fall back to PyTorch) and one that disagrees with its
    metadata (input/output shapes): `run` calls this before it opens any device.
    """
    from robot_ssl.learning.export import export_model

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such model file: {path}")
    kind = _sniff_kind(path)
    if kind == "checkpoint":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            pass
        else:
            try:
                with tempfile.TemporaryDirectory(prefix="robot-ssl-run-") as tmp:
                    onnx_path = export_model(path, "onnx", Path(tmp) / "model.onnx")
                    predictor = load_predictor(onnx_path, num_threads=num_threads)
                return predictor, f"{path.name} (checkpoint exported to ONNX Runtime)"
            except ExportError as e:
                print(f"robot-ssl: ONNX export failed ({e}); using PyTorch", file=sys.stderr)
    predictor = load_predictor(path, num_threads=num_threads)
    runtime = {"onnx": "ONNX Runtime", "torchscript": "TorchScript", "checkpoint": "PyTorch"}
    return predictor, f"{path.name} ({runtime.get(predictor.kind, predictor.kind)})"


def grid_shape(predictor: Any) -> tuple[int, int]:
    """(S, D) of the predictor's output grid."""
    shape = getattr(predictor, "grid_shape", None)
    if shape is not None:
        return tuple(shape)  # type: ignore[return-value]
    cfg = predictor.config
    return cfg.num_sensors, cfg.num_distances


def grid_distances(predictor: Any) -> np.ndarray:
    """Distance bins (m) of a predictor's output grid (its ModelConfig, else 0..0.30 m)."""
    cfg = getattr(predictor, "config", None)
    d = getattr(cfg, "distances_m", None)
    if d is not None:
        return np.asarray(d, dtype=np.float64)
    n = getattr(cfg, "num_distances", len(DEFAULT_DISTANCES_M))
    if n == len(DEFAULT_DISTANCES_M):
        return np.asarray(DEFAULT_DISTANCES_M)
    return np.linspace(0.0, 0.30, n)
