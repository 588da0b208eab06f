"""``Module`` and ``Parameter``: the contract every layer follows.

* ``y = m(x)`` runs ``forward`` and remembers what the backward pass needs.
* ``gx = m.backward(gy)`` returns the gradient with respect to the last input
  and *accumulates* parameter gradients into ``p.grad`` (call ``zero_grad``
  between steps, as in PyTorch).  ``m.backward_params(gy)`` accumulates the
  parameter gradients only (a training step needs no gradient of the data).
* ``state_dict()`` / ``load_state_dict()`` use PyTorch's key names
  (``"0.weight"``, ``"features.3.bias"``, ``"bn.running_mean"``...).
* What a forward pass saves for its backward pass is kept per thread: threads
  may share a module, each running ``y = m(x); m.backward(g)`` on its own data
  (parameter gradients still accumulate into the one shared ``p.grad``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


class Parameter:
    """A learnable array: ``.data`` (ndarray) and ``.grad`` (ndarray or None).

    ``requires_grad=False`` freezes it: gradients are not accumulated and
    optimisers leave it alone (e.g. a conv layer with fixed, hand-made filters).
    """

    def __init__(self, data: Any, requires_grad: bool = True):
        self.data = np.array(data, copy=True)
        self.requires_grad = bool(requires_grad)
        if not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"Parameter data must be floating-point, got dtype {self.data.dtype}")
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def accumulate(self, g: np.ndarray) -> None:
        """Add ``g`` to ``.grad`` (creating it on first use); nothing if frozen."""
        if not self.requires_grad:
            return
        g = np.asarray(g, dtype=self.data.dtype)
        if g.shape != self.data.shape:
            raise ValueError(f"gradient of shape {g.shape} does not match parameter shape {self.shape}")
        if self.grad is None:
            self.grad = g.copy()
        else:
            self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class _PerThread:
    """A module attribute that a forward pass saves for the backward pass, held per
    thread: two threads calling one shared module each get back their own (a single
    attribute would hand one thread's saved input to the other's backward pass).
    Reads as None in a thread that has not set it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj._local, self.name, None)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj._local, self.name, value)


# the per-thread attributes Module declares (below): what every forward pass sets
_SAVED = frozenset({"_ctx", "_x", "_saved", "_shape", "_mask", "_grad"})


class Module:
    """Base class of all layers (and of whole models)."""

    training: bool
    _parameters: OrderedDict[str, Parameter]
    _buffers: OrderedDict[str, np.ndarray]
    _modules: OrderedDict[str, Module]
    _local: threading.local
    # what forward saves for backward, per thread (the names the layers use)
    _ctx: Any = _PerThread()
    _x: Any = _PerThread()
    _saved: Any = _PerThread()
    _shape: Any = _PerThread()
    _mask: Any = _PerThread()
    _grad: Any = _PerThread()

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_local", threading.local())

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and copy without the per-thread saved state (a fresh module's)."""
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "_local", threading.local())

    # -- registration ----------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if name in _SAVED and "_local" in d and not isinstance(value, (Parameter, Module)):
            if name not in d["_parameters"] and name not in d["_modules"] and name not in d["_buffers"]:
                # what a forward saves (per thread): the common case, straight into the
                # thread's slot (what the class's _PerThread descriptor would do)
                if isinstance(getattr(type(self), name, None), _PerThread):
                    setattr(d["_local"], name, value)
                else:
                    object.__setattr__(self, name, value)
                return
        if "_parameters" not in d:
            raise AttributeError(f"call Module.__init__() in {type(self).__name__}.__init__ first")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A non-learned array saved in the state dict (e.g. running statistics)."""
        self.__setattr__(name, value)
        self._buffers[name] = value

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    # -- calling ---------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def forward(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_output: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def backward_params(self, grad_output: Any) -> None:
        """Accumulate the parameter gradients only: the backward pass of a model's first
        layer, whose input needs no gradient (PyTorch likewise skips the input's gradient
        when it does not require one).  Layers that can skip work override this."""
        self.backward(grad_output)

    def _need_ctx(self, ctx: Any) -> Any:
        if ctx is None:
            raise ValueError(
                f"backward called before forward on {type(self).__name__}: call the module on an input first"
            )
        return ctx

    # -- traversal -------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- state -----------------------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed as PyTorch would key them."""
        sd: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, m in self.named_modules():
            for name, p in m._parameters.items():
                sd[f"{mod_name}.{name}" if mod_name else name] = p.data.copy()
            for name, b in m._buffers.items():
                sd[f"{mod_name}.{name}" if mod_name else name] = np.array(b, copy=True)
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into parameters and buffers; shapes must match.

        With ``strict`` (the default) a missing or unexpected key is an error.
        Nothing is changed unless every entry is valid.
        """
        own: dict[str, tuple[Module, str, bool]] = {}
        for mod_name, m in self.named_modules():
            for name in m._parameters:
                own[f"{mod_name}.{name}" if mod_name else name] = (m, name, True)
            for name in m._buffers:
                own[f"{mod_name}.{name}" if mod_name else name] = (m, name, False)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        staged = []
        for key, (m, name, is_param) in own.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            current = m._parameters[name].data if is_param else m._buffers[name]
            if value.shape != current.shape:
                raise ValueError(f"load_state_dict: {key!r} has shape {value.shape}, the model expects {current.shape}")
            staged.append((m, name, is_param, value.astype(current.dtype, copy=True)))
        for m, name, is_param, value in staged:
            if is_param:
                m._parameters[name].data = value
            else:
                m._set_buffer(name, value)

    # -- printing --------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
