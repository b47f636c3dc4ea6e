"""presil.host.compiler: the compiler front end.

FP32 ONNX --quantize()--> int8 QDQ ONNX --to_ir()--> presil IR --partition()-->
NPU / host segments.  reference.py runs the IR on the golden ops and the QDQ
model in onnxruntime and compares them layer by layer.
"""

from .errors import (CalibrationError, CompilerError, DynamicShapeError, ModelError,
                     UnsupportedOpError)
from .frontend import to_ir
from .ir import Graph
from .partition import Segment, partition, partition_table
from .quantize import prepare_fp32, quantize

__all__ = ["CalibrationError", "CompilerError", "DynamicShapeError", "ModelError",
           "UnsupportedOpError", "Graph", "to_ir", "partition", "partition_table", "Segment",
           "prepare_fp32", "quantize"]
