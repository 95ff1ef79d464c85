"""TV-L1 optical flow between two frames and the flow images the apex-frame networks take.

The convention is OpenCV's: flow ``(u, v)`` at pixel ``(x, y)`` of the first frame says the point
moved to ``(x + u, y + v)`` in the second; ``u`` is horizontal (right positive), ``v`` vertical
(down positive), both in pixels.

Optical strain is the magnitude of the infinitesimal strain tensor of the flow, as STSTNet and
OFF-ApexNet use it (Liong et al., FG 2019; Gan et al., Signal Process. Image Commun. 2019, after
Shreve et al. 2011): ``eps = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)``, the derivatives taken with
``np.gradient`` (central differences inside, one-sided at the border). It is computed at the
resolution the flow was computed at and then resized, like the papers' 28x28 strain images.

Resizing: the flow is resized with area averaging when shrinking (bilinear when enlarging) and
re-expressed in pixels of the resized image: ``u`` times ``new_w / old_w``, ``v`` times
``new_h / old_h``. Strain is a ratio of lengths, so it is resized without any rescaling.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mer_keras.datasets.frames import read_frame

CHANNELS = ("u", "v", "strain")  # the channel order of flow_images and of the flow cache
STSTNET_SIZE = 28


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of OpenCV's Dual TV-L1 (``cv2.optflow.DualTVL1OpticalFlow_create``).

    Defaults are OpenCV's (Zach et al. 2007; Sanchez, Meinhardt-Llopis, Facciolo, IPOL 2013,
    the implementation STSTNet's authors used): ``lambda_`` weighs the data term against
    smoothness (smaller: smoother flow), ``theta`` couples the two sub-problems, ``tau`` is the
    time step, ``scales``/``scale_step`` the pyramid, ``warps`` the warps per scale,
    ``epsilon`` the stopping threshold, ``median_filtering`` the median filter size (1: none).
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def __post_init__(self):
        for name in ("scales", "warps", "inner_iterations", "outer_iterations", "median_filtering"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"TV-L1 `{name}` must be a positive int. Received: {name}={value!r}")
        for name in ("tau", "lambda_", "theta", "epsilon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"TV-L1 `{name}` must be a positive number. Received: {name}={value!r}")
        if not 0 < self.scale_step < 1:
            raise ValueError(
                f"TV-L1 `scale_step` must be in (0, 1). Received: scale_step={self.scale_step!r}"
            )
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, numbers.Real) or self.gamma < 0:
            raise ValueError(f"TV-L1 `gamma` must be a number >= 0. Received: gamma={self.gamma!r}")

    def as_dict(self) -> dict:
        """Plain numbers, for cache keys and reports."""
        return {k: (int(v) if isinstance(v, numbers.Integral) else float(v)) for k, v in asdict(self).items()}

    def create(self):
        """A new OpenCV TV-L1 solver with these parameters."""
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=float(self.tau),
            lambda_=float(self.lambda_),
            theta=float(self.theta),
            nscales=int(self.scales),
            warps=int(self.warps),
            epsilon=float(self.epsilon),
            innnerIterations=int(self.inner_iterations),
            outerIterations=int(self.outer_iterations),
            scaleStep=float(self.scale_step),
            gamma=float(self.gamma),
            medianFiltering=int(self.median_filtering),
            useInitialFlow=False,
        )


def as_hw(size, name="size") -> tuple:
    """``(height, width)`` from an int (square) or a pair of positive ints; ``name`` for the error."""
    pair = (size, size) if isinstance(size, numbers.Integral) and not isinstance(size, bool) else size
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in pair)
    ):
        raise ValueError(f"`{name}` must be a positive int or (height, width). Received: {name}={size!r}")
    return int(pair[0]), int(pair[1])


def to_grey(image) -> np.ndarray:
    """An (H, W) uint8 grey image from RGB uint8 ``(H, W, 3)`` or grey ``(H, W)`` input."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"Expected an RGB (H, W, 3) or grey (H, W) image. Received: shape {image.shape}")
    return np.ascontiguousarray(image, dtype=np.uint8)


def apply_transform(grey, transform) -> np.ndarray:
    """``grey`` cropped to a box ``(x, y, width, height)``, passed through a callable, or as is (None).

    This is where a per-clip face crop goes; the same transform is applied to both frames.
    """
    if transform is None:
        return grey
    if callable(transform):
        return to_grey(transform(grey))
    if (
        isinstance(transform, (tuple, list))
        and len(transform) == 4
        and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in transform)
    ):
        x, y, w, h = (int(d) for d in transform)
        if w >= 2 and h >= 2 and x >= 0 and y >= 0 and x + w <= grey.shape[1] and y + h <= grey.shape[0]:
            return grey[y : y + h, x : x + w]
        raise ValueError(
            f"The crop box must lie inside the {grey.shape[1]}x{grey.shape[0]} frame and be at "
            f"least 2x2. Received: transform={tuple(transform)!r}"
        )
    raise ValueError(
        "`transform` must be None, a crop box (x, y, width, height) of ints or a callable "
        f"image -> image. Received: transform={transform!r}"
    )


def read_grey(path, transform=None, work_size=None) -> np.ndarray:
    """A frame file as (H, W) uint8 grey, cropped by ``transform``, then resized to ``work_size``."""
    grey = apply_transform(to_grey(read_frame(path)), transform)
    if work_size is not None:
        grey = resize_image(grey, work_size)
    return grey


def resize_image(image, size) -> np.ndarray:
    """``image`` at ``size`` (int or (height, width)): area averaging to shrink, bilinear to enlarge."""
    height, width = as_hw(size)
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def tvl1_flow(first, second, params: TVL1Params | None = None, solver=None) -> np.ndarray:
    """TV-L1 flow ``(H, W, 2)`` float32 (u, v) from grey or RGB ``first`` to ``second`` (same size).

    ``solver`` reuses an OpenCV solver made by ``params.create()`` (creating one costs little, but
    a loop over many pairs need not). Non-finite values, which TV-L1 never should give, raise.
    """
    first, second = to_grey(first), to_grey(second)
    if first.shape != second.shape:
        raise ValueError(f"Both frames must have the same size. Received: {first.shape} and {second.shape}")
    if min(first.shape) < 2:
        raise ValueError(f"Frames must be at least 2x2 pixels for optical flow. Received: {first.shape}")
    if solver is None:
        solver = (params or TVL1Params()).create()
    flow = solver.calc(first, second, None)
    if not np.isfinite(flow).all():
        raise FloatingPointError("TV-L1 returned non-finite flow values.")
    return np.ascontiguousarray(flow, dtype=np.float32)


def optical_strain(flow) -> np.ndarray:
    """Optical strain magnitude ``(H, W)`` float32 of a flow ``(H, W, 2)``: see the module docstring."""
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2 or min(flow.shape[:2]) < 2:
        raise ValueError(f"Expected a flow of shape (H, W, 2), H, W >= 2. Received: shape {flow.shape}")
    u_y, u_x = np.gradient(flow[..., 0])  # axis 0 is y (rows), axis 1 is x (columns)
    v_y, v_x = np.gradient(flow[..., 1])
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def resize_flow(flow, size) -> np.ndarray:
    """``flow (H, W, 2)`` at ``size``, in pixels of the resized image (u by new_w/old_w, v by new_h/old_h)."""
    height, width = as_hw(size)
    old_h, old_w = flow.shape[:2]
    resized = resize_image(np.ascontiguousarray(flow, dtype=np.float32), (height, width))
    return (resized * np.array([width / old_w, height / old_h], np.float32)).astype(np.float32)


def flow_images(
    first, second, size=STSTNET_SIZE, params: TVL1Params | None = None, solver=None
) -> np.ndarray:
    """``(h, w, 3)`` float32 channels u, v, strain (``CHANNELS``) of the TV-L1 flow first -> second.

    The flow and its strain are computed at the frames' own resolution, then resized to ``size``
    (u, v re-expressed in pixels of the resized image; see the module docstring).
    """
    height, width = as_hw(size)
    flow = tvl1_flow(first, second, params, solver)
    strain = resize_image(optical_strain(flow), (height, width))
    return np.concatenate([resize_flow(flow, (height, width)), strain[..., None]], axis=-1)


def flow_images_of_files(
    first_path,
    second_path,
    size=STSTNET_SIZE,
    params: TVL1Params | None = None,
    transform=None,
    work_size=None,
    solver=None,
) -> np.ndarray:
    """:func:`flow_images` between two frame files, read grey, cropped by ``transform`` (None: the
    whole frame) and resized to ``work_size`` before the flow (None: the frames' own size)."""
    first = read_grey(first_path, transform, work_size)
    second = read_grey(second_path, transform, work_size)
    return flow_images(first, second, size, params, solver)
