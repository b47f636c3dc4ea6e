"""Named errors of the compiler front end.

Every error a user can provoke with a model, calibration data or an option is
one of these, and its message names the node / input / dim concerned, so the
user can fix the model without reading a traceback.
"""

from __future__ import annotations


class CompilerError(Exception):
    """Base class of every compiler error."""


class ModelError(CompilerError):
    """The ONNX model cannot be read or is malformed."""


class DynamicShapeError(CompilerError):
    """A graph input has a symbolic or unknown dimension (the NPU needs static shapes)."""

    def __init__(self, input_name: str, dim_index: int, dim: str, shape: list):
        self.input_name = input_name
        self.dim_index = dim_index
        self.dim = dim
        fixed = [1 if not isinstance(d, int) or d <= 0 else d for d in shape]
        super().__init__(
            f"input '{input_name}' has a dynamic dimension {dim_index} ({dim}) in shape "
            f"{shape}; the NPU needs static shapes: pass input_shapes={{'{input_name}': "
            f"{fixed}}} (with the shape you run) to fix it")


class CalibrationError(CompilerError):
    """Calibration data is missing, unreadable or does not match the model's inputs."""


class UnsupportedOpError(CompilerError):
    """A node that neither the NPU nor the host fallback can run."""

    def __init__(self, node_name: str, op_type: str, reason: str = ""):
        self.node_name = node_name
        self.op_type = op_type
        msg = f"node '{node_name}' (op {op_type}) is supported neither by the NPU nor by the host"
        super().__init__(msg + (f": {reason}" if reason else ""))
