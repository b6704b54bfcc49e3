"""A quiet console: TensorFlow's C++ start-up lines kept off the user's terminal, everything else passed through.

TensorFlow 2.21 prints its start-up lines (the absl pre-init warning, CUDA stub / cuInit lines on CPU-only
machines, oneDNN notices, cpu_feature_guard, XLA service banners) from C++ straight to file descriptor 2, whatever
TF_CPP_MIN_LOG_LEVEL says (tensorflow/tensorflow#100442), so no Python-level filter can catch them.
:func:`quiet_console` therefore points fd 2 at a pipe read by a small filter *process* that drops the lines
matching :data:`NOISE` and copies every other byte to the real stderr. A process, not a thread: when TensorFlow
aborts or the trainer is killed, the filter still gets what was written and flushes it (it ends at end-of-file).
Python's own ``sys.stderr`` (one-line errors, tracebacks, warnings, progress bars) is re-pointed at the real stderr
and does not go through the filter.

``--verbose`` or ``TTRNN_VERBOSE=1`` turns the filter off. This module imports nothing of the project and never
imports TensorFlow; call :func:`quiet_console` before TensorFlow is imported.
"""
import atexit
import os
import re
import subprocess
import sys

# Start-up and notice lines only: a line is dropped when it matches one of these. Fatal (F...) lines never match.
NOISE = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ cudart_stub\.cc:\d+\] ",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ cuda_(platform|executor|driver|diagnostics|dnn|fft|blas)\.cc:\d+\] ",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ gpu_device\.cc:\d+\] Cannot dlopen some GPU libraries",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ cpu_feature_guard\.cc:\d+\] ",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ port\.cc:\d+\] oneDNN custom operations are on",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] oneDNN supports DT_\w+ only ",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ service\.cc:\d+\] (XLA service 0x[0-9a-f]+ initialized|  StreamExecutor )",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ generator_dataset_op\.cc:\d+\] Memory patch applied",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ dump_mlir_util\.cc:\d+\] disabling MLIR crash reproducer",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ device_compiler\.h:\d+\] Compiled cluster using XLA!",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] Unable to register cu(DNN|FFT|BLAS) factory",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] computation placer already registered",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ mlir_graph_optimization_pass\.cc:\d+\] MLIR V1 optimization pass is not enabled",
    r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] TF-TRT Warning: Could not find TensorRT",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",     # the LiteRT interpreter's (experiments.export)
    # a notice, not a failure: one allocation above 10 % of *free* memory, which the page cache keeps small on a
    # healthy machine (a plain GRU's kernel on the paper's frames fires it on every step); running out is
    # bfc_allocator's
    r"^W\d{4} [\d:.]+\s+\d+ cpu_allocator_impl\.cc:\d+\] Allocation of \d+ exceeds 10% of free system memory\.$",
)]
# A multi-line notice: TensorFlow's graph type inference rejecting the optional outputs of a tf.cond whose branches
# differ (the tensorized layers' per-batch choice of projection, ttrnn.layers.kernel): harmless, the graph runs.
# Dropped from its first line through "while inferring type of node" (at most BLOCK_MAX lines, so nothing else is
# ever lost).
BLOCK_START = re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ type_inference\.cc:\d+\] Type inference failed")
BLOCK_END = re.compile(r"^\s*while inferring type of node ")
BLOCK_MAX = 80
VERBOSE_ENV = "TTRNN_VERBOSE"
_installed = {}


def add_console_args(parser):
    """Add ``--verbose`` (show TensorFlow's start-up lines too) to an argparse parser."""
    parser.add_argument("--verbose", action="store_true",
                        help=f"show TensorFlow's C++ start-up lines too (also {VERBOSE_ENV}=1)")
    return parser


def is_noise(line):
    """True for a known TensorFlow start-up line (``line`` as text, with or without its newline)."""
    return any(p.search(line.rstrip("\r\n")) for p in NOISE)


def wants_verbose(verbose=False, environ=None):
    environ = os.environ if environ is None else environ
    return bool(verbose) or environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def quiet_console(verbose=False):
    """Filter TensorFlow's start-up lines out of fd 2 for the rest of this process (and the children it starts).
    No-op with ``verbose`` / TTRNN_VERBOSE=1, when already installed, when fd 2 is closed, or when someone else
    already replaced ``sys.stderr`` (pytest's capture, a notebook: a CLI's main called as a library function).
    Returns whether the filter is on."""
    if _installed or wants_verbose(verbose) or sys.stderr is not sys.__stderr__:
        return bool(_installed)
    try:
        real = os.dup(2)
    except OSError:
        return False
    # multiprocessing's resource tracker (started by the first semaphore, e.g. of a reader pool) lives until this
    # process has exited; started now it holds the real stderr, not the filter's pipe, so at exit the filter sees
    # end-of-file at once instead of _restore waiting its 5 s for the tracker (every run with --workers > 0).
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    read_end, write_end = os.pipe()
    # -S -E: a bare interpreter (no site, no PYTHON* variables) starts in milliseconds and imports only `re`
    proc = subprocess.Popen([sys.executable, "-S", "-E", os.path.abspath(__file__)], stdin=read_end, stdout=real,
                            stderr=real, start_new_session=True)  # own session: Ctrl-C does not kill the filter
    os.close(read_end)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    _installed.update(proc=proc, real=real)
    atexit.register(_restore)
    return True


def _restore():
    """At exit: give fd 2 back to the real stderr (closing our end of the pipe) and let the filter drain."""
    proc, real = _installed["proc"], _installed["real"]
    try:
        sys.stderr.flush()
        os.dup2(real, 2)
        proc.wait(timeout=5)  # reader processes we forked may still hold the pipe; do not wait on them forever
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass


def filter_lines(source, sink):
    """Copy lines from binary stream `source` to `sink`, dropping start-up noise and the type-inference notice
    block (kept whole if it runs past BLOCK_MAX lines without its end line)."""
    held = []
    for raw in source:
        line = raw.decode("utf-8", "replace")
        if held:
            held.append(raw)
            if BLOCK_END.search(line):
                held = []
            elif len(held) > BLOCK_MAX:
                sink.write(b"".join(held))
                sink.flush()
                held = []
        elif BLOCK_START.search(line):
            held = [raw]
        elif not is_noise(line):
            sink.write(raw)
            sink.flush()
    if held:
        sink.write(b"".join(held))
        sink.flush()


if __name__ == "__main__":  # the filter process started by quiet_console
    filter_lines(sys.stdin.buffer, sys.stdout.buffer)
