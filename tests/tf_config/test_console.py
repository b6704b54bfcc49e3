"""The quiet console (tf_config.console): TensorFlow's C++ start-up lines never reach stderr; real errors, crashes
and everything Python prints still do; TTRNN_VERBOSE=1 shows everything. Real subprocesses, as a user runs them."""
import os
import signal
import subprocess
import sys
import textwrap

from helpers import REPO, STARTUP_MARKERS

# what TensorFlow 2.21 printed on a CPU-only machine (its C++ side, fd 2), and a line that is not start-up noise
NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
         "I0000 00:00:1795993972.623436    8290 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
         "GPU will not be used.\n"
         "E0000 00:00:1795994693.972162   14506 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
         "Failed call to cuInit: UNKNOWN ERROR (303)\n"
         "W0000 00:00:1796159515.884158   15587 cpu_allocator_impl.cc:82] Allocation of 176947200 exceeds 10% of free "
         "system memory.\n")
REAL = "E0000 00:00:1795994693.972162   14506 bfc_allocator.cc:485] Allocator ran out of memory trying to allocate\n"


def python(code, env=None):
    # no TF_CPP_MIN_LOG_LEVEL: the filter must work without it (TensorFlow 2.21 ignores it for these lines anyway)
    full_env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TTRNN_VERBOSE")}
    full_env.update(PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=REPO)


CRASH = f"""
    import os, sys
    from tf_config.console import quiet_console
    quiet_console()
    print("python says hello", file=sys.stderr)
    os.write(2, {(NOISE + REAL).encode()!r})   # as the C++ side writes: straight to fd 2
    os.abort()                                  # and dies before any clean-up
"""


def test_a_crash_keeps_real_lines_and_drops_startup_noise():
    res = python(CRASH)
    assert res.returncode == -signal.SIGABRT
    assert "python says hello" in res.stderr and REAL.strip() in res.stderr, res.stderr
    assert not any(m in res.stderr for m in STARTUP_MARKERS), res.stderr


def test_verbose_environment_shows_everything():
    res = python(CRASH, env={"TTRNN_VERBOSE": "1"})
    assert NOISE.strip() in res.stderr and REAL.strip() in res.stderr, res.stderr


def test_tensorflow_startup_is_silent_but_its_errors_are_not():
    res = python("""
        from tf_config.console import quiet_console
        quiet_console()
        import tensorflow as tf
        tf.function(lambda: tf.io.read_file("/nonexistent/ttrnn-console-test"))()
    """)
    assert res.returncode == 1
    assert "OP_REQUIRES failed" in res.stderr      # TensorFlow's C++ error line, through the filter unchanged
    assert "NotFoundError" in res.stderr and "/nonexistent/ttrnn-console-test" in res.stderr  # the Python error
    assert not any(m in res.stderr for m in STARTUP_MARKERS), res.stderr


def test_filter_drops_the_type_inference_notice_block_only():
    """The multi-line type-inference notice of a tf.cond goes; the lines around it, and a block that never ends,
    come through."""
    import io

    from tf_config import console

    block = ["W0000 00:00:1796002484.151577   22718 type_inference.cc:340] Type inference failed. This indicates",
             "goo.gle/debugstr    ", "type_id: TFT_OPTIONAL", "args {", "}",
             " is neither a subtype nor a supertype of the combined inputs preceding it:",
             "\tfor Tuple type infernce function 0",
             "\twhile inferring type of node 'tt_gru_1/input_to_hidden_1/cond/output/_17'"]
    text = "\n".join(["before"] + block + ["epoch 1/1 (20.3 s): train_loss 2.4564", "E0000 a real error"]) + "\n"
    sink = io.BytesIO()
    console.filter_lines(io.BytesIO(text.encode()), sink)
    assert sink.getvalue().decode().splitlines() == ["before", "epoch 1/1 (20.3 s): train_loss 2.4564",
                                                     "E0000 a real error"]
    unended = "\n".join(block[:3] + ["x"] * (console.BLOCK_MAX + 5)) + "\n"
    sink = io.BytesIO()
    console.filter_lines(io.BytesIO(unended.encode()), sink)
    assert sink.getvalue().decode() == unended
