"""The command-line kit every CLI of the project imports: the parser, the usage error, the atomic file write.

One exit status for bad input across every CLI: 2, with one line on stderr (argparse's own convention), and nothing
already written lost. Plain Python only (no TensorFlow, no NumPy), so a usage error costs nothing to report.
"""
import argparse
import difflib
import os
import sys
from pathlib import Path

USAGE = 2          # exit status of a usage error (bad option, bad value, bad input file)


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


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
        """"unrecognized arguments: --use-ttt (did you mean --use-tt?)"."""
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


def usage_exit(prog, exc):
    """Print a UsageError as the one line argparse would and return the usage exit status."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return USAGE


def atomic_write(path, data):
    """Write `data` (str or bytes) to `path` so that a reader sees the old file or the whole new one: a temporary
    file beside it, fsync'd, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
