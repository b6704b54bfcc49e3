"""Start N local workers of one command, each with its TF_CONFIG on loopback ports (worker 0 is the chief).

    python -m experiments.launch --workers 2 -- python -m experiments.ucf11 --demo --epochs 2

For trying multi-worker training (tf.distribute.MultiWorkerMirroredStrategy) on one machine and for tests. Output
lines are forwarded with a ``[w0]`` / ``[w1]`` prefix (stdout to stdout, stderr to stderr). If a worker fails, the
others are stopped (their collectives would wait forever) and the launcher exits with that worker's status; Ctrl-C
or SIGTERM stops all workers (exit 130 / 143). Each worker runs in its own process group so that its whole process
tree is stopped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from ttrnn.cli import OneLineParser

TERM_GRACE_SECONDS = 5.0


def free_ports(n):
    """N distinct currently-free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_configs(ports, host="localhost"):
    """One TF_CONFIG JSON string per worker for a cluster of ``host:port`` workers; index 0 is the chief."""
    workers = [f"{host}:{p}" for p in ports]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(len(workers))]


def _forward(stream, prefix, out, lock):
    """Copy lines from a worker pipe to OUT with a prefix (binary-safe; one lock so lines do not interleave)."""
    for line in iter(stream.readline, b""):
        with lock:
            out.buffer.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()
    stream.close()


def _stop(procs):
    """SIGTERM every live worker's process group, then SIGKILL those still alive after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [p for p in procs if p.poll() is None]
        for p in live:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + TERM_GRACE_SECONDS
        while any(p.poll() is None for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)


def launch(command, workers, port_base=None, host="localhost", env=None):
    """Run COMMAND as WORKERS processes with TF_CONFIG; return the exit status (0 when all succeeded)."""
    ports = list(range(port_base, port_base + workers)) if port_base else free_ports(workers)
    lock = threading.Lock()
    procs, threads = [], []
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i, config in enumerate(tf_configs(ports, host)):
            worker_env = dict(os.environ if env is None else env, TF_CONFIG=config, PYTHONUNBUFFERED="1")
            p = subprocess.Popen(command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            prefix = f"[w{i}] ".encode()
            for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
                t = threading.Thread(target=_forward, args=(stream, prefix, out, lock), daemon=True)
                t.start()
                threads.append(t)
        status = 0
        while True:
            if interrupted:
                _stop(procs)
                status = 128 + interrupted[0]
                print(f"launch: interrupted, stopped {workers} worker(s)", file=sys.stderr)
                break
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:
                i, code = failed[0]
                _stop(procs)
                status = code if code > 0 else 128 - code
                print(f"launch: worker {i} failed (exit {code}); stopped the others", file=sys.stderr)
                break
            if all(p.poll() == 0 for p in procs):
                break
            time.sleep(0.1)
        for t in threads:
            t.join(timeout=5)
        return status
    except OSError as e:
        _stop(procs)
        print(f"launch: cannot start {command[0]!r}: {e.strerror or e}", file=sys.stderr)
        return 2
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv=None):
    parser = OneLineParser(
        prog="python -m experiments.launch",
        description="Start N local workers of a command with TF_CONFIG on loopback ports (worker 0 = chief).",
        usage="%(prog)s --workers N [--port-base P] -- COMMAND [ARGS...]")
    parser.add_argument("--workers", type=int, required=True, metavar="N", help="number of worker processes")
    parser.add_argument("--port-base", type=int, default=None, metavar="P",
                        help="use ports P..P+N-1 (default: free ports chosen by the OS)")
    parser.add_argument("--host", default="localhost", help="address the workers use to reach each other")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        split = argv.index("--")
        own, command = argv[:split], argv[split + 1:]
    else:
        own, command = argv, []
    args = parser.parse_args(own)
    if not command:
        parser.error("no command given; put it after '--'")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.port_base is not None and not 1024 <= args.port_base <= 65535 - args.workers:
        parser.error("--port-base must leave N ports within 1024..65535")
    return launch(command, args.workers, args.port_base, args.host)


if __name__ == "__main__":
    raise SystemExit(main())
