"""The camera viewpoint travels with the model: a detector drives only with the camera
it was trained with.

A detector learns where obstacles and free floor appear in the image; with another
pitch, mount height or lens the same obstacle falls elsewhere, and the model's
probabilities are silently wrong. Training records its sessions' camera (the pinhole
geometry of `pinhole.Pinhole`) in the checkpoint and every export; `run`, `eval` and
`replay` compare it with the camera they use, within `pinhole.VIEWPOINT_TOLERANCES`
(the image size itself does not count: frames are resized to the model's input).
"""

from __future__ import annotations

import sys
from typing import Any

from pinhole import VIEWPOINT_TOLERANCES, Pinhole, ViewpointTolerances
from robot_ssl.core.errors import RobotSSLError

__all__ = ["ALLOW_OPTION", "ViewpointMismatch", "check_model_camera", "check_viewpoint"]

ALLOW_OPTION = "--allow-viewpoint-mismatch"


class ViewpointMismatch(RobotSSLError):
    """The model was trained with another camera viewpoint than the one it is used with."""


def check_viewpoint(
    model_viewpoint: Pinhole | None,
    camera: Pinhole,
    *,
    model_name: str,
    camera_name: str,
    allow: bool = False,
    tol: ViewpointTolerances = VIEWPOINT_TOLERANCES,
) -> str | None:
    """None when the model's viewpoint is `camera`'s (within `tol`); otherwise a warning
    line for the caller to print when the model records no viewpoint (an older file) or
    `allow` is set, else ViewpointMismatch (one line naming what differs)."""
    if model_viewpoint is None:
        return (
            f"warning: {model_name} records no camera viewpoint (an older file): it cannot be "
            f"checked against {camera_name}"
        )
    diffs = model_viewpoint.viewpoint_differences(camera.pinhole(), tol)
    if not diffs:
        return None
    what = f"{model_name} was trained with another camera viewpoint than {camera_name}"
    detail = "; ".join(diffs) + " (model vs camera)"
    if allow:
        return f"warning: {what}: {detail}; going on ({ALLOW_OPTION})"
    raise ViewpointMismatch(f"{what}: {detail}; retrain, or pass {ALLOW_OPTION}")


def check_model_camera(
    predictor: Any,
    camera: Pinhole,
    camera_name: str,
    *,
    allow: bool,
    prog: str,
    model_name: str | None = None,
) -> None:
    """`check_viewpoint` of a loaded predictor (its `viewpoint`; `model_name` defaults to
    its `path`) against the camera it will see; a warning is printed on stderr as
    "`prog`: warning: ...". Called by `run`, `eval` and `replay` before any device opens
    or any frame is scored."""
    line = check_viewpoint(
        getattr(predictor, "viewpoint", None),
        camera,
        model_name=model_name or str(getattr(predictor, "path", "the model")),
        camera_name=camera_name,
        allow=allow,
    )
    if line:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)
