"""Progress for every CLI of the project: tqdm's bar on a terminal, plain lines elsewhere (a log file, a pipe), so
logs get readable lines instead of carriage returns. No TensorFlow, no project imports."""
import sys
import time


class LineProgress:
    """The part of tqdm's interface the CLIs use (update, set_postfix, close), as one line per tenth of `total`
    (and at the end): "desc: 120/1200 clip (10%, 35 s)"."""

    def __init__(self, total, desc, unit, file):
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.n, self.postfix, self.shown, self.t0 = 0, "", 0, time.perf_counter()

    def update(self, n=1):
        self.n += n
        if self.total and self.n * 10 // self.total > self.shown * 10 // self.total:
            self.shown = self.n
            self._line()

    def set_postfix(self, **values):
        self.postfix = "  ".join(f"{k} {v}" for k, v in values.items())

    def close(self):
        if self.n != self.shown:
            self.shown = self.n
            self._line()

    def _line(self):
        pct = f"{100 * self.n / self.total:.0f}%, " if self.total else ""
        tail = f"  {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct}{time.perf_counter() - self.t0:.0f} s){tail}",
              file=self.file, flush=True)


def progress(total, desc, unit="clip", file=None, leave=True):
    """A tqdm bar when `file` (default stderr) is a terminal, else a LineProgress."""
    file = file or sys.stderr
    if hasattr(file, "isatty") and file.isatty():
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit=unit, file=file, dynamic_ncols=True, leave=leave)
    return LineProgress(total, desc, unit, file)
