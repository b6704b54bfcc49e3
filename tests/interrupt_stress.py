"""`python tests/interrupt_stress.py STORE N SEED`: N epochs of a store's feed through tf.data and a traced step, the
trainer's way (cli.handle_interrupts, cli.deferred_interrupts, a check_interrupt() per batch), each hit by a SIGINT
from another thread at a random moment: while the iterator is made, a batch read, a step run or the iterator torn
down. Prints JSON {"epochs", "interrupts", "raised_elsewhere"}; an abort (heap corruption) is a non-zero status.

Raising the interrupt wherever the main thread happens to be corrupted TensorFlow's heap within seconds in this
very loop ("free(): invalid next size", "malloc_consolidate(): invalid chunk size"); test_run_safety runs it.
"""
import json
import os
import random
import signal
import sys
import threading
import traceback

import tensorflow as tf

from ttrnn.cli import check_interrupt, deferred_interrupts, handle_interrupts
from ttrnn.data import BatchFeed, InputSpec, ReaderPool, map_batches
from ttrnn.store import FrameStore


def main(path, epochs, seed):
    rng = random.Random(seed)
    store = FrameStore(path)
    feed = BatchFeed(store, range(len(store)), InputSpec("sequence", max_len=4), batch_size=4, training=True,
                     reader=ReaderPool(path, workers=0))
    dataset = feed.dataset(lambda: 0)
    step = tf.function(lambda batch: tf.reduce_sum(tf.cast(batch[0], tf.float32)))
    handle_interrupts()
    interrupts = elsewhere = 0
    with deferred_interrupts():
        for _ in range(epochs):
            timer = threading.Timer(rng.uniform(0.0, 0.02), os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            try:
                for _ in map_batches(dataset, step):
                    check_interrupt()
                timer.join()
                check_interrupt()        # a signal after the epoch's last check
            except KeyboardInterrupt as exc:
                interrupts += 1
                frames = traceback.extract_tb(exc.__traceback__)
                elsewhere += frames[-1].name != "check_interrupt"
    print(json.dumps({"epochs": epochs, "interrupts": interrupts, "raised_elsewhere": elsewhere}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
