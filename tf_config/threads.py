"""Thread settings for TensorFlow: ``--intra-op``, ``--inter-op``, ``--threads-preset`` and the OpenMP environment.

TensorFlow fixes its thread pools when its runtime (the eager context) initializes, i.e. at the first op, so
:func:`apply_threads` must run before any TensorFlow op (building a Keras model, creating a strategy, tf.data).
Calling it later with different values raises :class:`ThreadsAlreadyInitializedError` instead of being ignored.

Typical use in a CLI::

    parser = argparse.ArgumentParser(); add_thread_args(parser); args = parser.parse_args()
    threads = apply_threads(args)          # -> {"intra_op": N, "inter_op": M}, as TensorFlow reports them
    ... build strategy / model ...; config["threads"] = threads

Presets are JSON files ``tf_config/presets/NAME.json`` (or a path to a ``.json`` file) with keys ``intra_op``,
``inter_op`` (int, 0 = TensorFlow's default, or ``"physical_cores"`` / ``"logical_cores"``), optional ``env``
(environment variables to set, e.g. ``KMP_BLOCKTIME``) and ``description``. Explicit flags override the preset.
This module imports nothing of the project and imports TensorFlow only inside :func:`apply_threads`.
"""

import argparse
import json
import os
from pathlib import Path

PRESET_DIR = Path(__file__).resolve().parent / "presets"
CORE_TOKENS = ("physical_cores", "logical_cores")


class ThreadConfigError(ValueError):
    """Bad thread settings: unknown preset, malformed preset file, negative thread count."""


class ThreadsAlreadyInitializedError(RuntimeError):
    """TensorFlow's runtime already started with other thread settings; they can no longer change."""


def available_cpus():
    """Logical CPUs this process may run on (respects taskset / cgroup cpusets / SLURM allocations)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def logical_cores():
    """Number of logical CPUs available to this process (hyper-threads count separately)."""
    return max(1, len(available_cpus()))


def physical_cores(cpuinfo_path="/proc/cpuinfo"):
    """Number of distinct physical cores among the CPUs available to this process.

    Reads ``processor`` / ``physical id`` / ``core id`` from /proc/cpuinfo; falls back to the logical count when
    that file is missing or lacks topology (e.g. some virtual machines and non-Linux systems).
    """
    allowed = set(available_cpus())
    try:
        text = Path(cpuinfo_path).read_text()
    except OSError:
        return logical_cores()
    cores = set()
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields or "core id" not in fields:
            continue
        try:
            cpu = int(fields["processor"])
        except ValueError:
            continue
        if cpu in allowed:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) if cores else logical_cores()


def known_presets():
    """Names of the presets shipped in tf_config/presets/, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def _resolve_count(value, where):
    """A preset/flag thread count → int ≥ 0 (``"physical_cores"`` / ``"logical_cores"`` resolved on this machine)."""
    if value == "physical_cores":
        return physical_cores()
    if value == "logical_cores":
        return logical_cores()
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ThreadConfigError(
            f"{where} must be an integer >= 0 (0 = TensorFlow default) or one of {', '.join(CORE_TOKENS)}, "
            f"got {value!r}")
    return value


def load_preset(name):
    """Read preset NAME (or a path to a .json file) → dict with int ``intra_op``, ``inter_op`` and str ``env``."""
    path = Path(name) if str(name).endswith(".json") else PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise ThreadConfigError(
            f"unknown threads preset {name!r}; known presets: {', '.join(known_presets())} (or a path to a .json file)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ThreadConfigError(f"threads preset {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ThreadConfigError(f"threads preset {str(path)!r} must be a JSON object")
    unknown = set(raw) - {"intra_op", "inter_op", "env", "description"}
    if unknown:
        raise ThreadConfigError(f"threads preset {str(path)!r} has unknown keys: {', '.join(sorted(unknown))}")
    env = raw.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, (str, int)) for v in env.values()):
        raise ThreadConfigError(f"threads preset {str(path)!r}: 'env' must map names to strings")
    return {
        "intra_op": _resolve_count(raw.get("intra_op", 0), f"preset {name!r} intra_op"),
        "inter_op": _resolve_count(raw.get("inter_op", 0), f"preset {name!r} inter_op"),
        "env": {str(k): str(v) for k, v in env.items()},
    }


def add_thread_args(parser):
    """Add ``--intra-op N``, ``--inter-op N`` and ``--threads-preset NAME`` to an argparse parser (defaults: unset)."""
    group = parser.add_argument_group("threads")
    group.add_argument("--intra-op", type=int, default=None, metavar="N",
                       help="threads inside one op (matmul); 0 = TensorFlow default; overrides the preset")
    group.add_argument("--inter-op", type=int, default=None, metavar="N",
                       help="ops run in parallel; 0 = TensorFlow default; overrides the preset")
    group.add_argument("--threads-preset", default=None, metavar="NAME",
                       help=f"thread preset: {', '.join(known_presets())} or a .json file")
    return parser


def _get(values, key):
    """Read KEY from an argparse Namespace or a dict (missing → None)."""
    if isinstance(values, dict):
        return values.get(key)
    return getattr(values, key, None)


def resolve_threads(values):
    """Combine preset and explicit flags → ``{"intra_op", "inter_op", "env"}`` without touching TensorFlow.

    A count is None when neither the preset nor a flag sets it (TensorFlow's current setting stays).
    ``values``: argparse Namespace or dict with optional ``intra_op``, ``inter_op``, ``threads_preset``.
    OMP_NUM_THREADS follows the effective intra-op count when that is > 0.
    """
    if isinstance(values, argparse.Namespace):
        values = vars(values)
    values = dict(values or {})
    preset = _get(values, "threads_preset")
    settings = load_preset(preset) if preset else {"intra_op": None, "inter_op": None, "env": {}}
    for key, flag in (("intra_op", "--intra-op"), ("inter_op", "--inter-op")):
        if _get(values, key) is not None:
            settings[key] = _resolve_count(_get(values, key), flag)
    env = dict(settings["env"])
    if settings["intra_op"]:
        env["OMP_NUM_THREADS"] = str(settings["intra_op"])
    settings["env"] = env
    return settings


def apply_threads(values):
    """Apply thread settings before TensorFlow's runtime starts; return what TensorFlow reports afterwards.

    Sets the preset's environment (``OMP_NUM_THREADS``, ``KMP_BLOCKTIME``, ``KMP_AFFINITY``, ...) and
    ``tf.config.threading.set_{intra,inter}_op_parallelism_threads``. With no preset and no flags nothing changes
    (TensorFlow's defaults, reported as 0). Raises ThreadConfigError for bad settings (before importing TensorFlow)
    and ThreadsAlreadyInitializedError if TensorFlow already runs with different thread counts.
    Returns ``{"intra_op": N, "inter_op": M}`` from ``tf.config.threading.get_*`` (0 = TensorFlow default).
    """
    settings = resolve_threads(values)
    os.environ.update(settings["env"])
    import tensorflow as tf

    try:
        if settings["intra_op"] is not None:
            tf.config.threading.set_intra_op_parallelism_threads(settings["intra_op"])
        if settings["inter_op"] is not None:
            tf.config.threading.set_inter_op_parallelism_threads(settings["inter_op"])
    except RuntimeError as e:
        raise ThreadsAlreadyInitializedError(
            f"cannot set TensorFlow threads to intra_op={settings['intra_op']} inter_op={settings['inter_op']}: "
            f"TensorFlow's runtime already started ({e}); call tf_config.apply_threads before building models, "
            f"datasets or strategies") from None
    return current_threads()


def current_threads():
    """``{"intra_op": N, "inter_op": M}`` as TensorFlow reports them now (0 = TensorFlow default)."""
    import tensorflow as tf

    return {"intra_op": int(tf.config.threading.get_intra_op_parallelism_threads()),
            "inter_op": int(tf.config.threading.get_inter_op_parallelism_threads())}


def main(argv=None):
    """``python -m tf_config.threads [flags]``: apply the flags and print the effective settings as JSON."""
    import sys

    parser = argparse.ArgumentParser(prog="python -m tf_config.threads", description=main.__doc__,
                                     allow_abbrev=False)
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message}\n")  # one line, as every CLI
    add_thread_args(parser)
    args = parser.parse_args(argv)
    try:
        threads = apply_threads(args)
    except (ThreadConfigError, ThreadsAlreadyInitializedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "KMP_BLOCKTIME", "KMP_AFFINITY")}
    print(json.dumps({"threads": threads, "env": env, "physical_cores": physical_cores(),
                      "logical_cores": logical_cores()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
