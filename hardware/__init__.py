"""Cost counting, latency measurement and lookup tables (``elasticnas.hardware``)."""

from elasticnas.hardware.counting import (
    count_all,
    count_macs,
    count_params,
    inference_memory_bytes,
    kv_cache_bytes,
    layer_cost,
    model_size_bytes,
    peak_activation_bytes,
)
from elasticnas.hardware.latency import LatencyResult, measure_archs, measure_latency
from elasticnas.hardware.lookup import LatencyTable
from elasticnas.hardware.reference import ReferenceClock
from elasticnas.hardware.runtime_parts import export_onnx_bytes
from elasticnas.hardware.runtimes import RUNTIMES
from elasticnas.hardware.table_check import check_table

__all__ = [
    "RUNTIMES",
    "LatencyResult",
    "LatencyTable",
    "ReferenceClock",
    "check_table",
    "count_all",
    "count_macs",
    "count_params",
    "export_onnx_bytes",
    "inference_memory_bytes",
    "kv_cache_bytes",
    "layer_cost",
    "measure_archs",
    "measure_latency",
    "model_size_bytes",
    "peak_activation_bytes",
]
