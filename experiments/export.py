"""Export a trained run's model to a SavedModel, ONNX or LiteRT, checked against Keras on its runtime.

    python -m experiments.export RUN_DIR --format savedmodel|onnx|litert [--out PATH] [--batch B] [--frames T]

RUN_DIR/model.keras is exported with Keras's own `model.export(path, format=...)`: `savedmodel` a TensorFlow
SavedModel folder (default RUN_DIR/saved_model, endpoint `serve`), `onnx` an ONNX file (default RUN_DIR/model.onnx)
for onnxruntime, `litert` a LiteRT flatbuffer (default RUN_DIR/model.tflite, the name must end in .tflite) that
the standard LiteRT interpreter runs with builtin ops only (no Flex delegate). The ttrnn layers take their export
path while Keras traces them (plain ops every exporter takes: `ttrnn.layers.kernel.exporting`); the model's
input is its uint8 frames, `(batch, T, H, W, 3)` with the run's T (or any T) and any batch size, or the fixed
`--batch` and `--frames` (e.g. `--batch 1 --frames 16` for chunks of a camera's frames on a phone: LiteRT's
XNNPACK then takes the whole graph, several times faster than with shapes known only at run time).

The artifact is then run by its runtime (TensorFlow, onnxruntime, the LiteRT interpreter) on a few clips of random
frames with zero-padded starts and compared with Keras: the line printed gives its size and the largest
difference; over 1e-5 it is an error (exit 1) and the file is still written, to inspect. An existing artifact is
replaced only by a complete one.

ONNX and LiteRT need the optional packages of the `export` extra (tf2onnx, onnx, onnxruntime, ai-edge-litert):
`pip install '.[export]'`. Exit statuses as every CLI (ttrnn.cli): 2 for a bad run directory, option or a
missing package, 1 when the export or its check fails.
"""

import importlib.util
import os
import shutil
import sys
import warnings
from pathlib import Path

from experiments.run_dir import CONFIG, MODEL, ONNX_FILE, SAVED_MODEL_DIR, TFLITE_FILE
from tf_config.console import add_console_args, quiet_console
from ttrnn.cli import OneLineParser, RunError, UsageError, exit_now

FORMATS = ("savedmodel", "onnx", "litert")
KERAS_FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
DEFAULT_OUT = {"savedmodel": SAVED_MODEL_DIR, "onnx": ONNX_FILE, "litert": TFLITE_FILE}
RUNTIMES = {"savedmodel": "TensorFlow", "onnx": "onnxruntime", "litert": "the LiteRT interpreter"}
# The packages each format needs beyond TensorFlow (import name -> pip name): the `export` extra of setup.cfg.
NEEDS = {"savedmodel": {}, "onnx": {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
         "litert": {"ai_edge_litert": "ai-edge-litert"}}
EXTRA = "pip install '.[export]'"
TOLERANCE = 1e-5            # the largest |runtime - Keras| accepted, float32 probabilities
CHECK_CLIPS, CHECK_STEPS = 2, 8


def missing_packages(fmt):
    """The pip names of the packages `fmt` needs that are not installed (found without importing them)."""
    return [pip for module, pip in NEEDS[fmt].items() if not _installed(module)]


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):          # ValueError: blocked (`sys.modules[name] = None`)
        return False


def require(fmt):
    """UsageError naming the extra unless every package `fmt` needs is installed."""
    missing = missing_packages(fmt)
    if missing:
        raise UsageError(f"--format {fmt} needs {', '.join(missing)} (not installed): {EXTRA}")


def export(model, path, fmt, batch=None, frames=None):
    """`model.export(path, format=...)` for `fmt` in FORMATS (Keras's exporter, quiet), written to a temporary
    name beside `path` and moved there once complete. `batch`, `frames`: the input's fixed batch size and number
    of frames (None: the model's, any where it has none). Returns `path`."""
    import keras

    require(fmt)
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")      # LiteRT wants the .tflite suffix on it too
    _remove(tmp)
    model(check_clips(model, clips=1, steps=2), training=False)   # Keras's ONNX export refuses a model never called
    shape = input_shape(model, batch, frames)
    signature = [keras.InputSpec(shape=shape, dtype=model.inputs[0].dtype)]
    try:
        model.export(str(tmp), format=KERAS_FORMATS[fmt], verbose=False, input_signature=signature)
    except BaseException:
        _remove(tmp)                                            # no half-written artifact left behind
        raise
    if path.is_dir():                                           # a SavedModel folder: the old one goes last
        old = path.with_name(f"{path.name}.old")
        _remove(old)
        path.rename(old)
        tmp.rename(path)
        _remove(old)
    else:
        os.replace(tmp, path)
    return path


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def runtime(path, fmt, threads=None):
    """A callable `uint8 frames (B, T, H, W, 3) -> probabilities (B, C)` (NumPy) running the exported artifact on
    its runtime: the SavedModel's `serve` endpoint (TensorFlow), an onnxruntime session, the standard LiteRT
    interpreter (builtin ops only: a model that needs Flex ops fails here). `threads`: the runtime's threads."""
    import numpy as np

    path = str(path)
    if fmt == "savedmodel":
        import tensorflow as tf
        loaded = tf.saved_model.load(path)              # kept: its functions refer to its variables
        return lambda x: np.asarray(loaded.serve(tf.constant(x)))
    if fmt == "onnx":
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = options.inter_op_num_threads = int(threads)
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=threads)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    flex = sorted(op for op in ops if op.startswith("Flex"))
    if flex:
        raise RunError(f"{path} needs TensorFlow ops outside LiteRT's builtins ({', '.join(flex)})")
    runner = interpreter.get_signature_runner()
    name = next(iter(runner.get_input_details()))
    return lambda x: next(iter(runner(**{name: x}).values()))


def input_shape(model, batch=None, frames=None):
    """`model`'s input shape with `batch` and `frames` fixed where given (ValueError for frames the model's own
    fixed number contradicts)."""
    shape = tuple(model.inputs[0].shape)
    if frames is not None and shape[1] is not None and shape[1] != frames:
        raise ValueError(f"the model takes {shape[1]} frames, not {frames}")
    return (batch, frames or shape[1]) + shape[2:]


def check_clips(model, clips=CHECK_CLIPS, steps=CHECK_STEPS, seed=0, shape=None):
    """uint8 clips of random frames for `model`'s input (or `shape`, None where free), the first ones zero
    (pre-padding, masked), with the fixed numbers of clips and steps where the shape has them."""
    import numpy as np

    shape = shape or model.inputs[0].shape
    clips, steps = shape[0] or clips, shape[1] or steps
    x = np.random.default_rng(seed).integers(1, 256, (clips, steps) + tuple(shape[2:]), dtype=np.uint8)
    for i in range(clips):
        x[i, :min(i, steps - 1)] = 0
    return x


def size_bytes(path):
    """Bytes of a file, or of every file under a folder (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def compare(model, path, fmt, batch=None, frames=None):
    """The largest |runtime(x) - model(x)| on `check_clips` of the exported input shape, and the clips' shape."""
    import keras
    import numpy as np

    x = check_clips(model, shape=input_shape(model, batch, frames))
    ours = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.abs(runtime(path, fmt)(x) - ours).max()), x.shape


def clips_text(shape):
    """"2 clips of 8 frames" for clips of `shape` `(B, T, ...)`."""
    return f"{shape[0]} clip{'s' if shape[0] != 1 else ''} of {shape[1]} frames"


def load(run_dir):
    """The run's model (UsageError for what is not a finished run directory)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"no run directory at {run_dir}")
    if not (run_dir / CONFIG).is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {CONFIG})")
    model_path = run_dir / MODEL
    if not model_path.is_file() or model_path.stat().st_size == 0:
        raise UsageError(f"{run_dir} has no {MODEL} (the run has not finished)")
    import ttrnn
    try:
        return ttrnn.load_model(model_path)
    except Exception as exc:  # a damaged or foreign .keras file fails in many ways: one line
        raise UsageError(f"cannot load {model_path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def out_path(args):
    """Where the artifact goes (UsageError for a LiteRT name without .tflite or an unusable folder)."""
    path = Path(args.out) if args.out else Path(args.run_dir) / DEFAULT_OUT[args.format]
    if args.format == "litert" and path.suffix != ".tflite":
        raise UsageError(f"--out {path}: a LiteRT file's name must end in .tflite")
    if args.format != "savedmodel" and path.is_dir():
        raise UsageError(f"--out {path} is a directory; give the file's name")
    if args.format == "savedmodel" and path.is_file():
        raise UsageError(f"--out {path} is a file; a SavedModel is a folder")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: no directory {path.parent}")
    return path


def parse_args(argv):
    p = OneLineParser(prog="python -m experiments.export", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help=f"a finished run directory ({CONFIG} + {MODEL})")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write: a TensorFlow SavedModel, "
                   "an ONNX file or a LiteRT (.tflite) file")
    p.add_argument("--out", default=None, help=f"the artifact's path (default RUN_DIR/{SAVED_MODEL_DIR}, "
                   f"RUN_DIR/{ONNX_FILE} or RUN_DIR/{TFLITE_FILE})")
    p.add_argument("--batch", type=int, default=None, help="a fixed batch size of the exported input (default: any)")
    p.add_argument("--frames", type=int, default=None,
                   help="a fixed number of frames of the exported input (default: the run's max-len if the model "
                        "has one, else any)")
    add_console_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    prog = "python -m experiments.export"
    try:
        require(args.format)
        for name in ("batch", "frames"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
        if not Path(args.run_dir).is_dir():
            raise UsageError(f"no run directory at {args.run_dir}")
        path = out_path(args)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        quiet_console(args.verbose)                          # TensorFlow starts with the model
        # Keras's own tf2onnx patch tests `np.object`, which NumPy 2 warns about: nothing for the user to do.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning,
                                module="keras.src.export.tf2onnx_lib")
        model = load(args.run_dir)
        try:
            input_shape(model, args.batch, args.frames)
        except ValueError as exc:
            raise UsageError(f"--frames {args.frames}: {exc}") from None
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            export(model, path, args.format, args.batch, args.frames)
        except Exception as exc:  # an exporter's failure: one line, the previous artifact kept
            raise RunError(f"export to {args.format} failed: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
                from None
        diff, shape = compare(model, path, args.format, args.batch, args.frames)
        if not diff <= TOLERANCE:
            raise RunError(f"{path}: {RUNTIMES[args.format]}'s outputs differ from Keras's by {diff:.2e} (more "
                           f"than {TOLERANCE:g}) on {clips_text(shape)}")
    except RunError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {args.format}, {size_bytes(path) / 1e6:.2f} MB; {RUNTIMES[args.format]}'s outputs equal "
          f"Keras's (largest difference {diff:.1e} on {clips_text(shape)})")
    return 0


if __name__ == "__main__":
    exit_now(main())
