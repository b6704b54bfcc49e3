"""`python tests/faults.py FAULT ARGS...` = `python -m experiments.ucf11 ARGS...` with one fault injected, so a test
sees how the real CLI handles a failure that a real run meets only by bad luck. Test code only; nothing else is
replaced:
- `store-vanishes`: the store file (--data) is deleted just before the reader processes start, after the trainer
  checked and opened it, so the readers cannot open it;
- `lr-blows-up`: right after epoch 1's checkpoint is written the optimizer's learning rate becomes 1e30, so a
  later step diverges.
"""
import os
import sys

from experiments import run_dir as rd
from experiments import ucf11
from ttrnn import data


def vanishing_store_start(pool):
    if os.path.exists(pool.path):
        os.unlink(pool.path)
    return REAL_START(pool)


def blowing_up_save(run_dir, model, optimizer, state):
    REAL_SAVE(run_dir, model, optimizer, state)
    if len(state["history"]) == 1:
        optimizer.learning_rate = 1e30


REAL_START, REAL_SAVE = data.ReaderPool.start, rd.save_checkpoint

if __name__ == "__main__":
    fault, argv = sys.argv[1], sys.argv[2:]
    if fault == "store-vanishes":
        data.ReaderPool.start = vanishing_store_start
    elif fault == "lr-blows-up":
        rd.save_checkpoint = blowing_up_save
    else:
        sys.exit(f"unknown fault {fault!r}")
    sys.exit(ucf11.main(argv))
