"""Every CLI of the project speaks one language for bad input: one line on stderr, exit status 2, before TensorFlow,
no abbreviated options, a "did you mean" for a mistyped one; and the demo cache can be shown and cleared."""
import json
import os
import subprocess
import sys

from helpers import REPO

CLIS = ["experiments.ucf11", "experiments.ucf101", "experiments.hollywood2", "experiments.celebfaces",
        "experiments.tables", "experiments.sweep", "experiments.bench", "experiments.predict", "experiments.launch",
        "experiments.demo", "experiments.tensorize", "experiments.export", "experiments.bench_backends",
        "preprocess.ucf11", "preprocess.ucf101", "preprocess.hollywood2", "preprocess.celebfaces",
        "preprocess.folders", "preprocess.synthetic", "preprocess.check", "preprocess.transcode", "tf_config.threads"]

# One interpreter calls each CLI's main() with the given arguments and reports (status, stderr) per call, and at the
# end whether TensorFlow got imported by any of them.
DRIVER = """
import contextlib, importlib, io, json, sys
calls, out = json.loads(sys.argv[1]), []
for module, argv in calls:
    mod = importlib.import_module(module)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = mod.main(argv)
        except SystemExit as exc:
            rc = exc.code
    out.append([module, rc, err.getvalue()])
print(json.dumps({"calls": out, "tensorflow": "tensorflow" in sys.modules}))
"""


def run_calls(calls, env=None):
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    res = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(calls)], capture_output=True, text=True,
                         env=full_env, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.splitlines()[-1])


def test_every_cli_refuses_an_unknown_option_with_one_line_and_status_2():
    report = run_calls([[m, ["--no-such-option"]] for m in CLIS])
    for module, rc, err in report["calls"]:
        lines = [line for line in err.splitlines() if line.strip()]
        # the unknown option, or a missing positional argument that argparse names first
        assert rc == 2 and len(lines) == 1 and "error:" in lines[0], (module, rc, err)
    assert not report["tensorflow"]


def test_an_option_removed_since_an_earlier_version_is_named_with_what_to_do():
    report = run_calls([["experiments.ucf11", ["--demo", "--reader", "plain"]],
                        ["experiments.ucf11", ["--demo", "--allocator=default"]],
                        ["experiments.bench", ["tt", "--allocator", "tuned"]]])
    for module, rc, err in report["calls"]:
        lines = [line for line in err.splitlines() if line.strip()]
        assert rc == 2 and len(lines) == 1 and "was removed in 0.2" in lines[0], (module, rc, err)
        assert "drop the option" in lines[0]
    assert not report["tensorflow"]


def test_mistyped_options_get_a_suggestion_and_abbreviations_are_refused():
    report = run_calls([["experiments.ucf11", ["--demo", "--use-ttt"]], ["experiments.ucf11", ["--epoch", "2"]],
                        ["experiments.tables", ["--jsn"]], ["preprocess.ucf11", ["src", "out.h5", "--frame-ski", "2"]]])
    (_, rc1, typo), (_, rc2, abbrev), (_, rc3, tables), (_, rc4, pre) = report["calls"]
    assert rc1 == rc2 == rc3 == rc4 == 2
    assert "unrecognized arguments: --use-ttt (did you mean --use-tt?)" in typo
    assert "--epoch" in abbrev and "did you mean --epochs?" in abbrev  # not silently taken as --epochs
    assert "did you mean --json?" in tables
    assert "--frame-ski" in pre  # argparse's own message: not taken as --frame-skip
    assert not report["tensorflow"]


def test_demo_cache_is_shown_and_cleared(tmp_path):
    cache = tmp_path / "cache"
    (cache / "demo-ucf11-v2").mkdir(parents=True)
    (cache / "demo-ucf11-v2" / "ucf11-v2.h5").write_bytes(b"x" * 3_000_000)
    (cache / "demo-ucf11-v2" / "store.done").write_text("ok\n")
    env = {"TTRNN_CACHE": str(cache)}
    shown = subprocess.run([sys.executable, "-m", "experiments.demo"], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=120)
    assert shown.returncode == 0 and f"{cache / 'demo-ucf11-v2'}: 3 MB" in shown.stdout, shown.stdout
    cleared = subprocess.run([sys.executable, "-m", "experiments.demo", "--clear"], capture_output=True, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=120)
    assert cleared.returncode == 0 and "removed" in cleared.stdout and not cache.exists()


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tmp_path):
    """preprocess into a pipe (as into a log file): lines, no carriage returns; the bar class behind them counts
    tenths and closes on the last item."""
    import io

    from preprocess.progress import LineProgress, progress
    from preprocess.synthetic import make_dataset
    buf = io.StringIO()
    bar = progress(25, "epoch 1/3", unit="batch", file=buf)
    assert isinstance(bar, LineProgress)
    for _ in range(25):
        bar.update(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("epoch 1/3: 3/25 batch (12%") and "25/25 batch (100%" in lines[-1]
    tree = make_dataset(tmp_path / "UCF11", classes=2, groups=1, clips_per_group=1, frames=4, size=(32, 24))
    res = subprocess.run([sys.executable, "-m", "preprocess.ucf11", tree, tmp_path / "s.h5", "--size", "32x24",
                          "--workers", "1"], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert "ucf11 -> s.h5: 2/2 clip (100%" in res.stderr and "\r" not in res.stderr, repr(res.stderr)
