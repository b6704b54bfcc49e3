"""How an experiments CLI ends when it does not succeed: one line on stderr and an exit status (README "Exit
statuses"). Plain Python (no TensorFlow, nothing of the project), so the run directory, the store checks and the
CLIs share these classes without importing each other.

    0    done (also: the run directory already holds this command's finished run)
    1    RunError: the run failed while running (non-finite loss, disk full, a reader that cannot start, a
         checkpoint that cannot be read); the last good checkpoint is kept, so the same command continues
    2    UsageError: refused before training (arguments, store, run directory: in use, another command's, other
         data, not writable); nothing written
    130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (a scheduler's kill): rerun the same command to continue
"""
import signal

EXIT_RUN_ERROR, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


class RunError(Exception):
    """A failure while running: printed as one line, exit status 1; what is on disk stays consistent (the last
    good checkpoint, no metrics.json)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so both unwind the same way (the
    reader workers are shut down, the last checkpoint stays) and end with exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def handle_sigterm():
    """Turn SIGTERM into `Terminated` in this (main) thread; call once at the start of a CLI's main()."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def interrupted_status(exc):
    """Exit status of an interruption: 143 for SIGTERM, 130 for SIGINT."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
