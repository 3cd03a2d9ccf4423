"""Running a detector file on the robot: ONNX Runtime behind one `Predictor` interface.

`load_predictor` opens an ONNX file and gives a :class:`Predictor` whose
``predict(images)`` applies exactly the training preprocessing
(robot_ssl.inference.preprocess.prepare_images). No torch here, by an import contract
(pyproject.toml): this is what a Raspberry Pi runs. Checkpoints (``.pt``) and
TorchScript files need torch: robot_ssl.learning.torch_predictor opens them (as
`Predictor` subclasses) and exports checkpoints to ONNX for this runtime.

Damaged model files are refused, never run (robot_ssl.inference.integrity: the ONNX
checksum written at export), and a file that disagrees with its own metadata (input and
output shapes, one inference on a blank image) is refused when opened, not at the first
camera frame. Each file's metadata also names the camera viewpoint the model was trained
with (robot_ssl.inference.viewpoint), as `Predictor.viewpoint` (None for older files).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pinhole import Pinhole
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.inference.integrity import ModelIntegrityError, check_onnx, one_line
from robot_ssl.inference.model_config import ModelConfig
from robot_ssl.inference.preprocess import prepare_images

__all__ = [
    "DEFAULT_DISTANCES_M",
    "ModelFileError",
    "ModelIntegrityError",
    "ModelMeta",
    "Predictor",
    "grid_distances",
    "grid_shape",
    "load_predictor",
    "self_test",
    "sniff_kind",
]

META_KEY = "robot_ssl"
META_FILE = "robot_ssl.json"
INPUT_NAME, OUTPUT_NAME = "image_bgr", "prob"
DEFAULT_DISTANCES_M = tuple(round(0.01 * i, 2) for i in range(31))


class ModelFileError(RobotSSLError):
    """A model file cannot be loaded, or disagrees with its own metadata."""


@dataclass(frozen=True)
class ModelMeta:
    """What an exported file says of itself (ONNX metadata ``robot_ssl``, TorchScript
    extra file ``robot_ssl.json``): its ModelConfig and the camera viewpoint it was
    trained with (None: an older file, or a model trained on sessions without one)."""

    config: ModelConfig
    viewpoint: Pinhole | None = None
    source: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": "robot-ssl/detector",
                "version": 1,
                "model_config": self.config.to_dict(),
                "viewpoint": None if self.viewpoint is None else self.viewpoint.viewpoint_dict(),
                "source": self.source,
                "input": "uint8 (B, H, W, 3) BGR at (input_height, input_width)",
                "output": "float32 (B, S, D) obstacle probability",
            }
        )

    @classmethod
    def from_json(cls, meta: str | bytes, path: Path) -> ModelMeta:
        """Parse a file's metadata; ModelFileError (one line) when it is missing or bad."""
        try:
            d = json.loads(meta)
            viewpoint = d.get("viewpoint")
            return cls(
                ModelConfig.from_dict(d["model_config"]),
                None if viewpoint is None else Pinhole.from_viewpoint_dict(viewpoint),
                str(d.get("source", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RobotSSLError) as e:
            raise ModelFileError(
                f"{path}: missing or bad robot-ssl metadata ({one_line(e)})"
            ) from None


class Predictor:
    """A loaded detector: `predict(images) -> probabilities (B, S, D)`.

    `images`: one BGR uint8 image (H, W, 3), a batch (B, H, W, 3) or a list, at
    any resolution; they are prepared exactly as in training
    (robot_ssl.inference.preprocess.prepare_images). `preprocess` and `infer` are the
    two halves of `predict`, for callers that time them separately (the live
    loop). `viewpoint`: the camera the model was trained with (None: not recorded).
    Subclasses implement `_run` on a prepared uint8 batch.
    """

    kind = "abstract"

    def __init__(self, path: Path, config: ModelConfig, viewpoint: Pinhole | None = None) -> None:
        self.path = path
        self.config = config
        self.viewpoint = viewpoint

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


class _OnnxPredictor(Predictor):
    kind = "onnx"

    def __init__(self, path: Path, meta: ModelMeta, session: Any) -> None:
        super().__init__(path, meta.config, meta.viewpoint)
        self.session = session

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def sniff_kind(path: Path) -> str:
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
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}") from None
    except zipfile.BadZipFile as e:
        raise ModelIntegrityError(f"{path}: damaged zip archive ({one_line(e, 80)})") from None
    if head[:4] == b"PK\x03\x04":  # a zip archive whose central directory is gone
        raise ModelIntegrityError(f"{path}: damaged model file (truncated zip archive)")
    if head[:1] == b"\x08":  # ONNX ModelProto starts with field 1 (ir_version), varint
        return "onnx"
    raise ModelFileError(f"{path}: not a checkpoint, TorchScript or ONNX file")


def load_predictor(
    path: str | Path, *, kind: str | None = None, num_threads: int | None = 1
) -> Predictor:
    """Open an ONNX model file for inference with ONNX Runtime; `kind` overrides detection.

    `num_threads` is ONNX Runtime's intra-op thread count (None: its default; the
    default 1 suits the robot's loop). The file's integrity is checked first (the ONNX
    checksum; ModelIntegrityError), then its agreement with its metadata (ModelFileError):
    both in one line, before the caller opens any device. A checkpoint or TorchScript
    file is refused in one line: they need torch (robot_ssl.learning.torch_predictor).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path}")
    kind = kind or sniff_kind(path)
    if kind in ("torchscript", "checkpoint"):
        raise ModelFileError(
            f"{path}: a {kind} needs torch; export it to ONNX (robot-ssl export) to run it "
            "without torch"
        )
    if kind != "onnx":
        raise ModelFileError(f"unknown model kind {kind!r}")
    predictor = _load_onnx(path, num_threads)
    self_test(predictor)
    return predictor


def self_test(predictor: Predictor) -> None:
    """One inference on a blank image: the output must be a finite (1, S, D) grid."""
    w, h = predictor.input_size
    try:
        out = predictor.infer(np.zeros((1, h, w, 3), np.uint8))
    except Exception as e:  # runtimes raise their own types for shape mismatches
        raise ModelFileError(
            f"{predictor.path}: the model does not run on its metadata's {w}x{h} input "
            f"({one_line(e, 160)})"
        ) from None
    want = (1, *predictor.grid_shape)
    if out.shape != want:
        raise ModelFileError(
            f"{predictor.path}: the model outputs {tuple(out.shape)} for one image, its "
            f"metadata says {want} (batch, sensors, distances)"
        )
    if not np.all(np.isfinite(out)):
        raise ModelFileError(f"{predictor.path}: the model outputs non-finite values (NaN or inf)")


def _load_onnx(path: Path, num_threads: int | None) -> Predictor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelFileError("onnxruntime is not installed (pip install onnxruntime)") from None
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
        raise ModelFileError(f"{path}: cannot load ONNX model ({one_line(e)})") from None
    text = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if text is None:
        raise ModelFileError(f"{path}: ONNX file has no robot_ssl metadata")
    meta = ModelMeta.from_json(text, path)
    _check_onnx_io(path, session, meta.config)
    return _OnnxPredictor(path, meta, session)


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
        raise ModelFileError(
            f"{path}: ONNX graph has inputs {names[0]} and outputs {names[1]}, expected "
            f"[{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]"
        )
    want_in = (None, cfg.input_height, cfg.input_width, 3)
    if inputs[0].type != "tensor(uint8)" or not fits(list(inputs[0].shape), want_in):
        raise ModelFileError(
            f"{path}: ONNX input is {inputs[0].type} {shape(inputs[0])}, its metadata says "
            f"tensor(uint8) (batch, {cfg.input_height}, {cfg.input_width}, 3)"
        )
    want_out = (None, cfg.num_sensors, cfg.num_distances)
    if not fits(list(outputs[0].shape), want_out):
        raise ModelFileError(
            f"{path}: ONNX output is {shape(outputs[0])}, its metadata says "
            f"(batch, {cfg.num_sensors}, {cfg.num_distances})"
        )


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
