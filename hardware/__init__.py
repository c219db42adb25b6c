"""Cost counting, latency measurement and lookup tables (``elasticnas.hardware``)."""

from elasticnas.hardware.counting import (
    count_all,
    count_macs,
    count_params,
    layer_cost,
    model_size_bytes,
    peak_activation_bytes,
)

__all__ = [
    "count_all",
    "count_macs",
    "count_params",
    "layer_cost",
    "model_size_bytes",
    "peak_activation_bytes",
]
