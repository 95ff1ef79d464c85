"""Optical flow inputs and the apex-frame networks: onset/apex per clip, TV-L1 u, v, strain, cache.

``STSTNet`` and ``OffApexNet`` (``networks.py``) import Keras, so they load on first use; the
flow front end needs OpenCV and numpy only.
"""

from mer_keras.flow.apex import (
    APEX_ESTIMATES,
    ApexSearch,
    OnsetApex,
    choose_onset_apex,
    estimate_apex,
    middle_frame,
    motion_score,
    motion_scores,
    require_flow_clip,
)
from mer_keras.flow.cache import default_flow_cache, flow_frame_cache, flow_inputs
from mer_keras.flow.optical_flow import (
    CHANNELS,
    STSTNET_SIZE,
    TVL1Params,
    flow_images,
    flow_images_of_files,
    optical_strain,
    resize_flow,
    tvl1_flow,
)

_NETWORKS = ("OffApexNet", "STSTNet")

__all__ = [
    "APEX_ESTIMATES",
    "CHANNELS",
    "STSTNET_SIZE",
    "ApexSearch",
    "OffApexNet",
    "OnsetApex",
    "STSTNet",
    "TVL1Params",
    "choose_onset_apex",
    "default_flow_cache",
    "estimate_apex",
    "flow_images",
    "flow_images_of_files",
    "flow_frame_cache",
    "flow_inputs",
    "middle_frame",
    "motion_score",
    "motion_scores",
    "optical_strain",
    "require_flow_clip",
    "resize_flow",
    "tvl1_flow",
]


def __getattr__(name):
    if name in _NETWORKS:
        from mer_keras.flow import networks

        return getattr(networks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
