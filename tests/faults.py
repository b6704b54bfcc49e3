"""`python tests/faults.py FAULT ARGS...` = `python -m experiments.ucf11 ARGS...` with one fault injected, so a test
sees how the real CLI handles a failure that a real run meets only by bad luck. Test code only; nothing else is
replaced:
- `store-vanishes`: the store file (--data) is deleted just before the reader processes start, after the trainer
  checked and opened it, so the readers cannot open it;
- `lr-blows-up`: right after epoch 1's checkpoint is written the optimizer's learning rate becomes 1e30, so a
  later step diverges;
- `sigterm-while-saving`: the process sends itself SIGTERM while the finished run saves model.keras, as a
  scheduler's kill that lands during the report would.
"""
import os
import signal
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


def signalled_save_model(run_dir, model):
    os.kill(os.getpid(), signal.SIGTERM)
    REAL_SAVE_MODEL(run_dir, model)


REAL_START, REAL_SAVE, REAL_SAVE_MODEL = data.ReaderPool.start, rd.save_checkpoint, rd.save_model

if __name__ == "__main__":
    fault, argv = sys.argv[1], sys.argv[2:]
    if fault == "store-vanishes":
        data.ReaderPool.start = vanishing_store_start
    elif fault == "lr-blows-up":
        rd.save_checkpoint = blowing_up_save
    elif fault == "sigterm-while-saving":
        rd.save_model = signalled_save_model
    else:
        sys.exit(f"unknown fault {fault!r}")
    sys.exit(ucf11.main(argv))
