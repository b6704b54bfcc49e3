"""tf_config: thread flags/presets (in child processes, since threads are fixed when TensorFlow starts), cluster
parsing and sharding, the custom multi-worker train step on 2 loopback workers against a single-process reference,
and the experiments.launch process manager."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import launch_workers

from experiments.launch import free_ports, tf_configs
from tf_config.cluster import ClusterConfigError, per_replica_batch, read_cluster, shard_indices
from tf_config.threads import ThreadConfigError, known_presets, physical_cores, resolve_threads

PY = sys.executable
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
ENV.pop("TF_CONFIG", None)


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=kw.pop("env", ENV), **kw)


# --- threads -------------------------------------------------------------------------------------------------

THREADS_CHILD = textwrap.dedent("""
    import argparse, json, sys
    from tf_config import add_thread_args, apply_threads, ThreadsAlreadyInitializedError
    import os
    parser = argparse.ArgumentParser(); add_thread_args(parser)
    result = {"applied": apply_threads(parser.parse_args(sys.argv[1:]))}
    import tensorflow as tf
    result["reported"] = [tf.config.threading.get_intra_op_parallelism_threads(),
                          tf.config.threading.get_inter_op_parallelism_threads()]
    result["omp"] = os.environ.get("OMP_NUM_THREADS")
    tf.reduce_sum(tf.ones((4, 4)))  # the runtime is now initialized
    result["same_again"] = apply_threads(parser.parse_args(sys.argv[1:]))
    try:
        apply_threads({"intra_op": result["applied"]["intra_op"] + 1})
        result["late"] = "no error"
    except ThreadsAlreadyInitializedError as e:
        result["late"] = str(e)
    print(json.dumps(result))
""")


def child_threads(*flags):
    proc = run([PY, "-c", THREADS_CHILD, *flags])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_flags_reach_tensorflow_and_late_change_is_an_error():
    r = child_threads("--intra-op", "1", "--inter-op", "1")
    assert r["applied"] == {"intra_op": 1, "inter_op": 1}
    assert r["reported"] == [1, 1]
    assert r["omp"] == "1"
    assert r["same_again"] == {"intra_op": 1, "inter_op": 1}  # re-applying identical values is harmless
    assert "already started" in r["late"]


def test_preset_with_flag_override():
    preset = json.loads((__import__("tf_config.threads").threads.PRESET_DIR / "server-36.json").read_text())
    r = child_threads("--threads-preset", "server-36", "--inter-op", "3")
    assert r["applied"] == {"intra_op": preset["intra_op"], "inter_op": 3}
    assert r["reported"] == [preset["intra_op"], 3]
    assert r["omp"] == str(preset["intra_op"])


def test_unknown_preset_is_a_one_line_error():
    proc = run([PY, "-m", "tf_config.threads", "--threads-preset", "no-such-machine"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-machine" in lines[0]
    for name in ("auto", "server-36", "gpu"):
        assert name in lines[0]
    with pytest.raises(ThreadConfigError):
        resolve_threads({"threads_preset": "no-such-machine"})
    with pytest.raises(ThreadConfigError):
        resolve_threads({"intra_op": -1})


def test_presets_resolve_and_auto_uses_physical_cores():
    assert {"auto", "server-36", "gpu"} <= set(known_presets())
    for name in known_presets():
        s = resolve_threads({"threads_preset": name})
        assert s["intra_op"] >= 0 and s["inter_op"] >= 0
    assert resolve_threads({"threads_preset": "auto"})["intra_op"] == physical_cores()
    assert resolve_threads({"threads_preset": "server-36"})["intra_op"] == 18
    assert resolve_threads({"threads_preset": "server-36"})["inter_op"] == 36
    assert resolve_threads({}) == {"intra_op": None, "inter_op": None, "env": {}}


def test_physical_cores_counts_hyperthread_siblings_once(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    blocks = [f"processor\t: {p}\nphysical id\t: 0\ncore id\t\t: {c}\n" for p, c in ((0, 0), (1, 1), (2, 0), (3, 1))]
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks))
    assert physical_cores(path) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2})  # both siblings of core 0
    assert physical_cores(path) == 1
    assert physical_cores(tmp_path / "missing") == 2  # falls back to the logical count


# --- cluster parsing and sharding ----------------------------------------------------------------------------

def test_read_cluster_from_env_and_spec_file(tmp_path):
    assert read_cluster(None, environ={}) is None
    config = tf_configs([1111, 2222])[1]
    got = read_cluster(None, environ={"TF_CONFIG": config})
    assert got == json.loads(config)
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps({"worker": ["a:1", "b:2", "c:3"]}))
    got = read_cluster({"cluster_spec": str(spec), "worker_index": 2}, environ={"TF_CONFIG": config})
    assert got == {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}
    bad = [({"cluster_spec": str(spec), "worker_index": 3}, {}), ({"cluster_spec": str(tmp_path / "nope")}, {}),
           (None, {"TF_CONFIG": "{not json"}), (None, {"TF_CONFIG": '{"cluster": {"worker": ["nohost"]}}'}),
           (None, {"TF_CONFIG": '{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}'}),
           ({"worker_index": 0}, {})]
    for args, environ in bad:
        with pytest.raises(ClusterConfigError):
            read_cluster(args, environ=environ)


@pytest.mark.parametrize("n,workers", [(10, 3), (9, 3), (1, 2), (7, 1), (5, 4)])
def test_shards_are_equal_length_and_cover_everything(n, workers):
    indices = np.arange(100, 100 + n)
    padded = [shard_indices(indices, w, workers, with_mask=True) for w in range(workers)]
    assert len({len(s) for s, _ in padded}) == 1
    assert len(padded[0][0]) == -(-n // workers)
    valid = np.concatenate([s[m] for s, m in padded])
    assert sorted(valid.tolist()) == indices.tolist()  # every entry exactly once among the valid ones
    assert set(np.concatenate([s for s, _ in padded]).tolist()) == set(indices.tolist())
    dropped = [shard_indices(indices, w, workers, remainder="drop") for w in range(workers)]
    assert len({len(s) for s in dropped}) == 1 and sum(map(len, dropped)) == n - n % workers
    assert len(set(np.concatenate(dropped).tolist())) == n - n % workers


def test_batch_rule():
    assert per_replica_batch(16, 2) == 8
    with pytest.raises(ClusterConfigError):
        per_replica_batch(15, 2)


# --- two loopback workers against one process ----------------------------------------------------------------

WORKER = textwrap.dedent("""
    import argparse, json, os, sys
    import numpy as np
    from tf_config import add_thread_args, apply_threads, add_cluster_args, make_strategy, agree_on_int
    from experiments.steps import make_train_step, make_predict_step
    parser = argparse.ArgumentParser(); add_thread_args(parser); add_cluster_args(parser); parser.add_argument("out")
    args = parser.parse_args()
    threads = apply_threads(args)
    info = make_strategy(args)
    import tensorflow as tf, keras
    GLOBAL_BATCH, N = 8, 24
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 5)).astype("float32")
    Y = np.eye(3, dtype="float32")[rng.integers(0, 3, N)]
    keras.utils.set_random_seed(1)
    with info.strategy.scope():
        model = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(4, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.01)),
            keras.layers.Dense(3, activation="softmax")])
        optimizer = keras.optimizers.Adam(0.01)
    initial = [v.numpy() for v in model.weights]
    step = make_train_step(info.strategy, model, optimizer, keras.losses.CategoricalCrossentropy(reduction=None),
                           GLOBAL_BATCH)
    def train_data(ctx):
        # worker w gets rows w, w+W, ...: step k covers the same 8 rows as the single-process batch k
        idx = np.concatenate([info.shard(np.arange(k, k + GLOBAL_BATCH)) for k in range(0, N, GLOBAL_BATCH)])
        return tf.data.Dataset.from_tensor_slices((X[idx], Y[idx])).batch(info.per_replica_batch(GLOBAL_BATCH))
    losses = [float(step(b)) for b in info.strategy.distribute_datasets_from_function(train_data)]
    predict = make_predict_step(info.strategy, model)
    def test_data(ctx):
        idx, valid = info.shard(np.arange(N - 1), with_mask=True)  # 23 rows: one padding repeat
        return tf.data.Dataset.from_tensor_slices((X[idx], idx, valid)).batch(5)
    rows, preds = [], []
    for b in info.strategy.distribute_datasets_from_function(test_data):
        p, i, v = predict(b)
        rows += i.numpy()[v.numpy()].tolist(); preds.append(p.numpy()[v.numpy()])
    preds = np.concatenate(preds)
    result = {"info": info.as_dict(), "threads": threads, "losses": losses, "rows": sorted(rows),
              "pred_err": float(np.abs(preds - model(X[rows]).numpy()).max()),
              "agreed": agree_on_int(info.strategy, 100 + info.worker_index, "chief"),
              "agreed_max": agree_on_int(info.strategy, 100 + info.worker_index, "max")}
    np.savez(os.path.join(args.out, f"weights{info.worker_index}.npz"), *[v.numpy() for v in model.weights])
    if info.is_chief:  # reference: Keras's own fit, one process, no strategy, same start and batches
        ref = keras.models.clone_model(model)
        ref.set_weights(initial)
        ref.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
        history = ref.fit(X, Y, batch_size=GLOBAL_BATCH, shuffle=False, epochs=1, verbose=0)
        result["ref_mean_loss"] = history.history["loss"][0]
        np.savez(os.path.join(args.out, "reference.npz"), *[v.numpy() for v in ref.weights])
    with open(os.path.join(args.out, f"result{info.worker_index}.json"), "w") as f:
        json.dump(result, f)
""")


def test_two_workers_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = launch_workers(2, [PY, str(script), str(tmp_path), "--intra-op", "1", "--inter-op", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = [json.loads((tmp_path / f"result{w}.json").read_text()) for w in (0, 1)]
    assert [r["info"]["is_chief"] for r in results] == [True, False]
    assert all(r["info"]["kind"] == "multi_worker" and r["info"]["num_replicas"] == 2 for r in results)
    assert all(r["threads"] == {"intra_op": 1, "inter_op": 2} for r in results)  # strategy kept the threads
    ref_w = np.load(tmp_path / "reference.npz")
    w0, w1 = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
    assert len(ref_w.files) == len(w0.files) == 4
    for k in ref_w:
        np.testing.assert_array_equal(w0[k], w1[k])  # the workers agree exactly
        np.testing.assert_allclose(w0[k], ref_w[k], rtol=1e-5, atol=1e-6)  # and equal Keras fit in one process
    assert len(results[0]["losses"]) == 3
    assert results[0]["losses"] == results[1]["losses"]
    np.testing.assert_allclose(np.mean(results[0]["losses"]), results[0]["ref_mean_loss"], rtol=1e-5)
    for r in results:
        assert r["rows"] == list(range(23))  # gathered predictions: every test row exactly once
        assert r["pred_err"] < 1e-5
        assert r["agreed"] == 100 and r["agreed_max"] == 101


# --- launch --------------------------------------------------------------------------------------------------

def test_launch_prefixes_output_and_stops_others_on_failure():
    code = ("import json, os, sys, time\n"
            "i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            "print('hello from', i, flush=True)\n"
            "sys.exit(3) if i == 1 else time.sleep(600)\n")
    proc = run([PY, "-m", "experiments.launch", "--workers", "2", "--", PY, "-c", code], timeout=60)
    assert proc.returncode == 3
    assert "[w0] hello from 0" in proc.stdout and "[w1] hello from 1" in proc.stdout
    assert "worker 1 failed" in proc.stderr


def test_launch_gives_each_worker_its_tf_config():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    code = "import os; print(os.environ['TF_CONFIG'])"
    proc = run([PY, "-m", "experiments.launch", "--workers", "3", "--", PY, "-c", code], timeout=60)
    assert proc.returncode == 0, proc.stderr
    configs = {}
    for line in proc.stdout.splitlines():
        prefix, _, payload = line.partition(" ")
        configs[prefix] = json.loads(payload)
    assert sorted(configs) == ["[w0]", "[w1]", "[w2]"]
    workers = configs["[w0]"]["cluster"]["worker"]
    assert len(set(workers)) == 3
    for w in range(3):
        assert configs[f"[w{w}]"] == {"cluster": {"worker": workers}, "task": {"type": "worker", "index": w}}
    bad = run([PY, "-m", "experiments.launch", "--workers", "2"], timeout=60)
    assert bad.returncode == 2 and "command" in bad.stderr


MEMORY_CHURN = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import tf_config.memory as memory
    applied = memory.apply_memory() if sys.argv[1] == "tuned" else memory.applied()
    def faults(rounds):      # minor page faults of allocating, touching and freeing a 64 MB array `rounds` times
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            a = np.empty(64 << 20, np.uint8)
            a[::4096] = 1
            del a
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    faults(1)
    print(json.dumps({"applied": applied, "faults": faults(8), "bfc": __import__("os").environ.get(
        "TF_CPU_ALLOCATOR_USE_BFC")}))
""")


def test_tuned_allocator_keeps_freed_memory_so_a_new_batch_faults_in_no_pages():
    """`tf_config.memory.apply_memory`: a large buffer freed and allocated again reuses the process's pages (glibc
    mallopt: no mmap, no trim) instead of a fresh mmap faulted in page by page, and TensorFlow's CPU allocator is
    set to BFC; a process that does not call it (`default`) keeps both defaults. Each in a fresh interpreter (no
    TensorFlow needed)."""
    from helpers import REPO
    out = {}
    for allocator in ("default", "tuned"):
        res = subprocess.run([sys.executable, "-c", MEMORY_CHURN, allocator], capture_output=True, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
        out[allocator] = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["default"]["applied"] == {"allocator": "default", "mallopt": {}, "env": {}}
    assert out["default"]["bfc"] is None and out["default"]["faults"] >= 8 * 16     # 64 MB: >= 32 huge pages
    assert out["tuned"]["applied"]["mallopt"] == {"M_MMAP_MAX": 0, "M_TRIM_THRESHOLD": 2 ** 31 - 1}
    assert out["tuned"]["bfc"] == "true" and out["tuned"]["applied"]["env"] == {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
    assert out["tuned"]["faults"] <= out["default"]["faults"] / 20, out
