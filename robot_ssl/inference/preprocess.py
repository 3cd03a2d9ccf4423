"""The one preprocessing of camera frames: what training, evaluation and the robot all do.

Scaling to float and channel reordering are part of the network itself
(robot_ssl.learning.models.normalize_images), so resizing is the only step a caller
performs: exported files take the uint8 images this gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from robot_ssl.core.errors import RobotSSLError

__all__ = ["ImageError", "prepare_images"]


class ImageError(RobotSSLError):
    """An image is not a uint8 BGR image (H, W, 3)."""


def prepare_images(images: np.ndarray | Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Camera frames -> network input: uint8 (B, height, width, 3), BGR, resized with INTER_AREA.

    `images` is one BGR uint8 image (H, W, 3), a batch (B, H, W, 3) or a
    sequence of images of any sizes; `size` is (width, height). Frames already
    at `size` are copied unchanged.
    """
    width, height = int(size[0]), int(size[1])
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    out = np.empty((len(images), height, width, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(
                f"expected uint8 BGR images (H, W, 3), got {image.dtype} {tuple(image.shape)}"
            )
        if image.shape[:2] == (height, width):
            out[i] = image
        else:
            out[i] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return out
