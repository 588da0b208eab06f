"""Import and first-call (compile) times of the compiled kernels, cold and cached.

    python benchmarks/compile_time.py            # the first-call table and the kernels compiled
    python benchmarks/compile_time.py --demo     # also: `convpool demo` from a cold cache
    python benchmarks/compile_time.py --isa native,avx2   # also held to AVX2 (numba for haswell)
    python benchmarks/compile_time.py --json out.json
    python benchmarks/compile_time.py --repeat 5   # five fresh processes per case (default 3)

Runs the same small script twice in fresh processes that share an empty numba cache
directory (``NUMBA_CACHE_DIR``): the first run compiles every kernel it touches, the
second loads them from that cache.  Your own cache is left alone.

Two clocks for every figure: wall time (``time.perf_counter``) and the CPU time of the
process (``time.process_time``: all its threads).  Compiling is single-threaded, so on
an idle machine the two agree; on a shared one wall time grows with the load and CPU
time does not - quote CPU time there.

Per kernel: a listener on numba's ``numba:compile`` event (sent only when a signature
is compiled, not when it is loaded from the cache) records every compilation - kernel,
argument types, and the time spent in it, both inclusive and "self" (less the kernels
it compiled on the way, e.g. an ``@njit`` helper it calls).  The listener goes into
each Python process through a ``sitecustomize`` module on ``PYTHONPATH``, so ``--demo``
also counts the compilations in the ablation's worker processes.

Each case also runs alone - a fresh process, an empty cache - ``--repeat`` times,
interleaved with the other cases, and the median is shown: on a shared machine one
run of a case moves by 30-50%.  An "alone" figure includes numba's own set-up on its
first compilation in a process (registries, and SciPy's linear algebra where SciPy is
installed); the tool measures that set-up on its own and prints it below the table.

Targets (issue 11; cold, alone, CPU time): conv2d forward+backward <= 3 s, each pooling
op <= 2 s, the demo's compiling <= 30 s; a figure above its target is flagged ``*``.
``--isa avx2`` runs every probe with the environment of ``convpool bench --isa avx2``
(numba compiles for ``haswell``; see :mod:`convpool.tools.bench_isa`); the CPU is named
beside every table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

# Installed as sitecustomize.py: appends one JSON line per compilation to $CONVPOOL_COMPILE_LOG.
LISTENER = r"""
import json, os, time
_path = os.environ.get("CONVPOOL_COMPILE_LOG")
if _path:
    from numba.core import event

    class _CompileLog(event.Listener):
        def __init__(self):
            self.stack = []  # compilations nest (a kernel compiles the helpers it calls)

        def on_start(self, ev):
            self.stack.append([time.perf_counter(), time.process_time(), 0.0, 0.0])

        def on_end(self, ev):
            t0, c0, child_wall, child_cpu = self.stack.pop()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if self.stack:
                self.stack[-1][2] += wall
                self.stack[-1][3] += cpu
            fn = ev.data["dispatcher"].py_func
            rec = {
                "kernel": f"{fn.__module__}.{fn.__qualname__}",
                "args": str(ev.data["args"]),
                "wall": wall,
                "cpu": cpu,
                "self_wall": wall - child_wall,
                "self_cpu": cpu - child_cpu,
                "depth": len(self.stack),
                "pid": os.getpid(),
            }
            with open(_path, "a") as f:
                f.write(json.dumps(rec) + "\n")

    event.register("numba:compile", _CompileLog())
"""

PROBE = r"""
import json, os, time

def mark(name, t, c):
    with open(os.environ["CONVPOOL_COMPILE_LOG"], "a") as f:
        f.write(json.dumps({"case": name, "wall": time.perf_counter() - t, "cpu": time.process_time() - c}) + "\n")

t, c = time.perf_counter(), time.process_time()
import numpy as np
import convpool.functional as F
mark("import", t, c)
x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
w = np.ones((6, 4, 3, 3), np.float32)

only = os.environ.get("CONVPOOL_PROBE_ONLY")

def timed(name, fn):
    if only and name != only:
        return
    t, c = time.perf_counter(), time.process_time()
    fn()
    mark(name, t, c)

def conv(*args):
    y, ctx = F.conv_forward(x, *args)
    F.conv_backward(np.ones_like(y), ctx)

def pool(*args, data=None, **kw):
    y, ctx = F.reduce_window_forward(x if data is None else data, *args, **kw)
    F.reduce_window_backward(np.ones_like(y), ctx)

def avg(*args, data=None):
    y, ctx = F.avg_pool_forward(x if data is None else data, *args)
    F.reduce_window_backward(np.ones_like(y), ctx)

def adaptive(kind, size):
    fwd, bwd = getattr(F, f"adaptive_{kind}_pool_forward"), getattr(F, f"adaptive_{kind}_pool_backward")
    out = fwd(x, 2, size)
    bwd(np.ones_like(out[0]), out[-1])

x1 = x.reshape(2, 4, 81)
x3 = np.random.default_rng(1).standard_normal((2, 4, 6, 6, 6)).astype(np.float32)
timed("conv fwd+bwd", lambda: conv(w, None, 1, 1))
timed("strided conv fwd+bwd", lambda: conv(w, None, 2, 1))
timed("1x1 conv fwd+bwd", lambda: conv(w[:, :, :1, :1]))
timed("depthwise conv fwd+bwd", lambda: conv(np.ones((4, 1, 3, 3), np.float32), None, 1, 1, 1, 4))
timed("2x2 max pool fwd+bwd", lambda: pool("max", 2, 2, 2))
timed("3x3 s2 p1 max pool fwd+bwd", lambda: pool("max", 2, 3, 2, 1))
timed("2x2 avg pool fwd+bwd", lambda: avg(2, 2, 2))
timed("3x3 s1 p1 avg pool fwd+bwd", lambda: avg(2, 3, 1, 1))
timed("max_pool1d k2 s2 fwd+bwd", lambda: pool("max", 1, 2, 2, data=x1))
timed("avg_pool1d k3 s1 p1 fwd+bwd", lambda: avg(1, 3, 1, 1, data=x1))
timed("max_pool3d 2 fwd+bwd", lambda: pool("max", 3, 2, 2, data=x3))
timed("min pool 2x2 fwd+bwd", lambda: pool("min", 2, 2, 2))
timed("median pool 3x3 fwd+bwd", lambda: pool("median", 2, 3, 1, 1, padding_mode="replicate"))
timed("adaptive avg pool fwd+bwd", lambda: adaptive("avg", 1))
timed("adaptive max pool fwd+bwd", lambda: adaptive("max", 3))
x = x.astype(np.float64)
timed("float64 conv fwd+bwd", lambda: conv(w.astype(np.float64), None, 1, 1))
timed("float64 2x2 max pool fwd+bwd", lambda: pool("max", 2, 2, 2))
"""


def target(case: str) -> float | None:
    """The issue's first-call target for a probe case (seconds, cold, alone), if any."""
    if case == "conv fwd+bwd":
        return 3.0
    if "pool" in case and not case.startswith("float64"):
        return 2.0
    return None


def _run(cmd: list[str], env: dict[str, str], log: str, **kw: object) -> list[dict]:
    """Run ``cmd`` with the compile log at ``log``; return the log's records."""
    open(log, "w").close()
    subprocess.run(cmd, env={**env, "CONVPOOL_COMPILE_LOG": log}, check=True, **kw)  # type: ignore[call-overload]
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def _split(records: list[dict]) -> dict[str, dict]:
    """Per probe case: its wall and CPU time and the compilations it triggered."""
    cases: dict[str, dict] = {}
    pending: list[dict] = []
    for rec in records:
        if "case" in rec:
            cases[rec["case"]] = {"wall": rec["wall"], "cpu": rec["cpu"], "compiled": pending}
            pending = []
        else:
            pending.append(rec)
    return cases


def _kernel_table(records: list[dict]) -> list[tuple[str, int, float, float]]:
    """(kernel, signatures compiled, self wall s, self CPU s), the costliest first."""
    by: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for rec in records:
        if "kernel" in rec:
            entry = by[rec["kernel"].removeprefix("convpool.")]
            entry[0] += 1
            entry[1] += rec["self_wall"]
            entry[2] += rec["self_cpu"]
    return sorted(((k, int(v[0]), v[1], v[2]) for k, v in by.items()), key=lambda r: -r[3])


def _demo(env: dict[str, str], log: str) -> dict:
    """`convpool demo` from a cold cache: total wall and CPU time (every process: the
    ablation's workers included) and the time spent compiling in them."""
    exe = os.path.join(os.path.dirname(sys.executable), "convpool")
    with tempfile.TemporaryDirectory() as out:
        t, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        records = _run([exe, "demo", "--out", out], env, log, stdout=subprocess.DEVNULL)
        wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    top = [r for r in records if r.get("depth") == 0]
    pids = collections.Counter(r["pid"] for r in top)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "wall": wall,
        "cpu": cpu,
        "compile_wall": sum(r["wall"] for r in top),
        "compile_cpu": sum(r["cpu"] for r in top),
        "processes": len(pids),
        "signatures": len(records),
        "kernels": _kernel_table(records),
        "compiled": records,
    }


def _flag(value: float, limit: float | None) -> str:
    return "*" if limit is not None and value > limit else " "


def _print_probes(report: dict, runs: list[list[dict]], cold: dict, repeat: int) -> None:
    print(
        f"first call of each op (seconds): alone = in a fresh process with an empty cache (median of {repeat}); in sequence ="
    )
    print("all in one process, in this order (later ones reuse kernels compiled before); cached = the")
    print("sequence again with the cache filled; * = above the target (alone, cold, CPU)\n")
    print(f"{'':30s} {'alone, cold':>16s} {'in sequence, cold':>19s} {'cached':>15s} {'target':>7s}")
    print(f"{'':30s} {'wall':>7s} {'CPU':>8s} {'wall':>9s} {'CPU':>9s} {'wall':>7s} {'CPU':>7s}")
    for name, c in report["cases"].items():
        a, b, d = c["alone"] or {"wall": float("nan"), "cpu": float("nan")}, c["cold"], c["cached"]
        limit = target(name)
        print(
            f"{name:30s} {a['wall']:7.2f} {a['cpu']:7.2f}{_flag(a['cpu'], limit)} {b['wall']:9.2f} {b['cpu']:9.2f} "
            f"{d['wall']:7.2f} {d['cpu']:7.2f} {'' if limit is None else f'{limit:.0f}':>7s}"
        )
    recompiled = sum(len(c["compiled"]) for c in report["cached"].values())
    print(f"\nsignatures compiled: {len(runs[0]) - len(cold)} cold, {recompiled} cached (0: the cache holds)")
    print(f"\n{'kernel (self time, cold)':64s} {'sigs':>4s} {'wall s':>7s} {'CPU s':>7s}")
    for kernel, n, wall, cpu in report["kernels"]:
        print(f"{kernel:64s} {n:4d} {wall:7.2f} {cpu:7.2f}")


def _median_trial(trials: list[dict]) -> dict:
    """The trial of median CPU time (its wall time and compilations with it), and the
    spread of CPU times over all trials."""
    ranked = sorted(trials, key=lambda t: t["cpu"])
    return {**ranked[(len(ranked) - 1) // 2], "cpu_all": [t["cpu"] for t in trials]}


def numba_setup(env: dict[str, str]) -> dict:
    """numba's one-time set-up in a fresh process: its first compilation (of a trivial
    function) less its second; whether SciPy is installed (numba imports scipy.linalg
    then, to find a BLAS for np.dot)."""
    code = (
        "import json, time, numpy as np, numba, importlib.util\n"
        "f = numba.njit(lambda a: a[0] + 1.0)\n"
        "g = numba.njit(lambda a: a[0] + 2.0)\n"
        "c0 = time.process_time(); f(np.ones(1)); c1 = time.process_time(); g(np.ones(1)); c2 = time.process_time()\n"
        "print(json.dumps({'first': c1 - c0, 'second': c2 - c1, 'scipy': importlib.util.find_spec('scipy') is not None}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(tmp: str, base_env: dict[str, str], demo: bool, repeat: int = 3) -> dict:
    """Every probe, cold and cached, in sequence and alone (``repeat`` times: the median);
    with ``demo`` the demo too."""
    report: dict = {}
    env = {**base_env, "NUMBA_CACHE_DIR": os.path.join(tmp, "cache")}
    log = os.path.join(tmp, "log.jsonl")
    runs = [_run([sys.executable, "-c", PROBE], env, log) for _ in range(2)]
    cold, cached = _split(runs[0]), _split(runs[1])
    trials: dict[str, list[dict]] = collections.defaultdict(list)
    for r in range(repeat):  # each case in a fresh process and cache, the cases interleaved
        for i, name in enumerate(n for n in cold if n != "import"):
            one = {**env, "NUMBA_CACHE_DIR": os.path.join(tmp, f"cache-{r}-{i}"), "CONVPOOL_PROBE_ONLY": name}
            trials[name].append(_split(_run([sys.executable, "-c", PROBE], one, log))[name])
    alone = {name: _median_trial(runs_of) for name, runs_of in trials.items()}
    report["cases"] = {name: {"alone": alone.get(name), "cold": cold[name], "cached": cached[name]} for name in cold}
    report["cached"] = cached
    report["kernels"] = _kernel_table(runs[0])
    setup = report["numba_setup"] = numba_setup({**env, "NUMBA_CACHE_DIR": os.path.join(tmp, "cache-setup")})
    _print_probes(report, runs, cold, repeat)
    print(
        f"\nnumba's own set-up, paid by the first compilation in a process (in each 'alone' figure): "
        f"{setup['first'] - setup['second']:.2f} s CPU (first trivial compile {setup['first']:.2f} s, second "
        f"{setup['second']:.2f} s); SciPy {'installed: numba imports scipy.linalg then' if setup['scipy'] else 'not installed'}"
    )
    del report["cached"]
    if demo:
        d = report["demo"] = _demo({**env, "NUMBA_CACHE_DIR": os.path.join(tmp, "cache-demo")}, log)
        share = d["compile_cpu"] / d["cpu"] if d["cpu"] else float("nan")
        print(
            f"\nconvpool demo, cold cache: {d['wall']:.0f} s wall, {d['cpu']:.0f} s CPU in {d['processes']} "
            f"processes; compiling {d['compile_wall']:.1f} s wall, {d['compile_cpu']:.1f} s CPU "
            f"({share:.0%} of the CPU time; target <= 30 s){_flag(d['compile_cpu'], 30.0)} "
            f"({d['signatures']} signatures)"
        )
        for kernel, n, wall, cpu in d["kernels"][:25]:
            print(f"  {kernel:62s} {n:4d} {wall:7.2f} {cpu:7.2f}")
    return report


def _host_cpu() -> str:
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return "host (no numba)"
    return f"{llvm.get_host_cpu_name()} (host)"


def main() -> None:
    from convpool.tools import bench_isa

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="also time `convpool demo` from a cold cache (minutes)")
    parser.add_argument("--isa", default="native", help="comma list of native, avx2, avx512 (as convpool bench --isa)")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per 'alone' case (the median is shown)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    try:
        settings = bench_isa.parse_isa(args.isa, bench_isa.cpu_flags(), bench_isa.cpu_name())
    except ValueError as exc:
        parser.error(str(exc))
    reports: dict = {}
    for name in settings:
        env = bench_isa.isa_environment(name)
        env.pop(bench_isa.CHILD, None)
        print(
            f"\n=== --isa {name}: CPU {bench_isa.cpu_name()}; numba target {env.get('NUMBA_CPU_NAME') or _host_cpu()}"
            f"{'; ' + ' '.join(f'{k}={v}' for k, v in bench_isa.ISA_ENV[name].items()) if name != 'native' else ''}"
            " ===\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "sitecustomize.py"), "w") as f:
                f.write(LISTENER)
            path = os.pathsep.join([tmp] + [p for p in [os.environ.get("PYTHONPATH")] if p])
            reports[name] = measure(tmp, {**env, "PYTHONPATH": path}, args.demo, args.repeat)
            reports[name]["cpu"] = bench_isa.cpu_name()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports[settings[0]] if len(settings) == 1 else {"settings": reports}, f, indent=1)


if __name__ == "__main__":
    main()
