"""The command-line kit every CLI of the project imports (experiments, preprocess): the parser, the errors and
the one table of exit statuses, SIGTERM and SIGINT as exceptions at safe points, the atomic file write.

Each failure is one line on stderr. Plain Python only (no TensorFlow, no NumPy at import), so an error costs
nothing to report.
"""
import argparse
import contextlib
import difflib
import gc
import signal
import sys
from pathlib import Path

__all__ = ["OK", "RUN_ERROR", "USAGE", "SIGINT_STATUS", "SIGTERM_STATUS", "UsageError", "RunError", "Terminated",
           "handle_interrupts", "deferred_interrupts", "check_interrupt", "forget_interrupt", "interrupted_status",
           "REMOVED_OPTIONS", "OneLineParser", "exit_now", "usage_exit", "atomic_write", "write_error"]

# The exit statuses of every CLI of the project; each failure is one line on stderr.
OK = 0
"""Done (experiments: also when the run directory already holds this command's finished run)."""
RUN_ERROR = 1
"""Failed while running, or finished with failures left to fix; what is on disk stays consistent and the same
command continues once the cause is fixed. experiments (`RunError`): a non-finite loss, a failed write, readers
that cannot open the store, a damaged clip, an unreadable checkpoint (the last good checkpoint kept, no
metrics.json). preprocess: clips that could not be decoded (listed and recorded in the store), a full disk, another
process writing the store. preprocess.check: damaged clips found."""
USAGE = 2
"""Refused before any work (`UsageError`, a bad option): a bad value or input file, a store without its shard
folder, a run directory in use, of another command, trained on other data or not creatable, a store made with
other parameters; nothing already written is lost."""
SIGINT_STATUS = 130
"""Interrupted by Ctrl-C (`KeyboardInterrupt`): rerun the same command to continue."""
SIGTERM_STATUS = 143
"""Interrupted by SIGTERM (`Terminated`, e.g. a scheduler's kill): rerun the same command to continue."""


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


class RunError(Exception):
    """A failure while running: printed as one line, exit status 1; the last good checkpoint stays and no
    metrics.json is written, so the same command continues once the cause is fixed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM raised in the main thread as Ctrl-C's KeyboardInterrupt is, so both unwind the same way (reader
    processes shut down, the last checkpoint kept) and only the exit status differs (143)."""


_deferring = False       # inside deferred_interrupts()
_pending = None          # the interrupt a deferred signal asked for, raised by the next check_interrupt()


def _on_signal(signum, frame):
    global _pending
    interrupt = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if _deferring and _pending is None:
        _pending = interrupt
        return
    _pending = None      # a second signal: raised here, at once, instead of the pending one
    raise interrupt()


def handle_interrupts():
    """From now on SIGTERM (a scheduler's kill, `kill PID`) raises `Terminated` and SIGINT (Ctrl-C)
    `KeyboardInterrupt` in this process's main thread: at once, or inside `deferred_interrupts()` at its next
    `check_interrupt()`."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


@contextlib.contextmanager
def deferred_interrupts():
    """Inside, SIGTERM / SIGINT are raised at the next `check_interrupt()` (the trainer calls it between batches),
    not wherever the main thread happens to be. Why: TensorFlow's Python code does not survive an exception at an
    arbitrary bytecode: interrupts at random moments while tf.data iterators were made and consumed corrupted the
    heap within seconds ("free(): invalid next size", an abort instead of exit 143). A second signal while one is
    pending raises at once: the way out of a step that does not return."""
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    check_interrupt()


def check_interrupt():
    """Raise the interrupt a signal asked for inside `deferred_interrupts()`, if any."""
    global _pending
    if _pending is not None:
        interrupt, _pending = _pending, None
        raise interrupt()


def forget_interrupt():
    """Drop a signal still pending: called once the work it would have stopped is done (a SIGTERM that lands while
    a finished run writes its report stops nothing; the run exits 0 with its result, not "interrupted")."""
    global _pending
    _pending = None


def interrupted_status(exc):
    """Exit status of an interruption: 143 for SIGTERM, 130 for SIGINT."""
    return SIGTERM_STATUS if isinstance(exc, Terminated) else SIGINT_STATUS


REMOVED_OPTIONS = {
    "--reader": "--reader was removed in 0.2: the streaming reader is the only one; drop the option",
    "--allocator": "--allocator was removed in 0.2: the tuned allocator is always applied; drop the option",
}
"""Options of earlier versions that were removed, with the one line a command that still passes one prints."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2), no abbreviated options (`--epoch 2` is not taken as
    `--epochs`), a "did you mean" for an unknown option, and the defaults in --help (`%(default)s` in the help
    texts: an option without a default says nothing)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(USAGE, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):
        args, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self.unrecognized(extras))
        return args

    def unrecognized(self, extras):
        """"unrecognized arguments: --use-ttt (did you mean --use-tt?)"; an option that an earlier version had is
        named as removed, with what to do instead (`REMOVED_OPTIONS`)."""
        removed = [REMOVED_OPTIONS[e.split("=")[0]] for e in extras if e.split("=")[0] in REMOVED_OPTIONS]
        if removed:
            return "; ".join(removed)
        known = [s for action in self._actions for s in action.option_strings]
        hints = []
        for extra in extras:
            close = difflib.get_close_matches(extra.split("=")[0], known, n=1, cutoff=0.6) \
                if extra.startswith("-") else []
            hints += [(extra, close[0])] if close else []
        if len(hints) == 1:
            hint = f" (did you mean {hints[0][1]}?)"
        else:
            hint = f" (did you mean {'; '.join(f'{c} for {e}' for e, c in hints)}?)" if hints else ""
        return f"unrecognized arguments: {' '.join(extras)}{hint}"


def exit_now(status):
    """`sys.exit(status)` for a CLI that loaded TensorFlow, from its `if __name__ == "__main__"` only.

    gc.freeze() first moves every live object (hundreds of thousands with TensorFlow and a model loaded) into the
    collector's permanent generation, which the interpreter's collections at shutdown skip: without it they take
    seconds of every trainer exit, walking objects the ending process frees anyway. Shutdown is otherwise the
    normal one: threads joined, atexit handlers run, streams flushed and closed; only cyclic garbage left at exit
    is not collected, which the ending process releases anyway. Not for a process that goes on (a test calling
    main() in-process)."""
    gc.freeze()
    sys.exit(status)


def usage_exit(prog, exc):
    """Print a UsageError as the one line argparse would and return the usage exit status."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return USAGE


def atomic_write(path, data, tmp=None):
    """`ttrnn.store.files.atomic_write` for a CLI: `data` (bytes or str, or a callable that writes into the open
    binary file) replaces `path` only once complete and synced, through `tmp` (default `path` + ".tmp"): a kill or
    a full disk leaves the old file. A failed write is a RunError naming the file."""
    # Imported here: the store's package imports NumPy and h5py, which a CLI's error path should not wait for.
    from ttrnn.store.files import atomic_write as write
    path = Path(path)
    try:
        write(path, data, tmp=tmp)
    except OSError as exc:
        raise write_error(path, exc) from None


def write_error(path, exc):
    """The RunError of a failed write of `path` (disk full, quota, permissions)."""
    kept = f"the previous {path.name} is kept; " if path.exists() else ""
    return RunError(f"cannot write {path}: {exc.strerror or exc}; {kept}free space (or fix the permissions) and "
                    "rerun the same command to continue from the last saved epoch")
