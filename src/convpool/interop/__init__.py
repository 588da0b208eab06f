"""Exchange with other engines.

* :mod:`._torch` - ``to_torch(model)`` / ``from_torch(module)``: the equivalent PyTorch
  model with the same weights and buffers, and back.
* :mod:`._onnx` - ``to_onnx(model, input_shape, path)`` / ``from_onnx(path)``: an ONNX file and back.
* :mod:`._safetensors` - ``save_safetensors(model, path)`` / ``load_safetensors(model,
  path)``: the weights as a safetensors file, by state_dict key.

PyTorch (and any other engine) is imported only when these functions are called.
"""

from ._onnx import from_onnx, to_onnx
from ._safetensors import load_safetensors, save_safetensors
from ._torch import from_torch, to_torch

__all__ = ["from_onnx", "from_torch", "load_safetensors", "save_safetensors", "to_onnx", "to_torch"]
