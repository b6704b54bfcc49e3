"""TensorBoard event files of a run: <run dir>/tensorboard/{train,test,val}/, one point per epoch and tag.

The layout of Keras's TensorBoard callback (one writer per split, tags ``epoch_loss``, ``epoch_accuracy``,
``epoch_map``), so train and test curves share a chart; the train writer also logs ``epoch_learning_rate`` (in
effect during the epoch) and ``epoch_seconds``. Steps are the epoch numbers of history.csv (1-based).

History.csv is the record: on resume the board is rewritten from it, so an epoch logged but not checkpointed
before a kill is never shown twice. Written with ``tf.summary`` (needs the ``tensorboard`` package).
"""
import shutil
from pathlib import Path

FOLDER = "tensorboard"      # <run dir>/tensorboard/, beside the files of experiments.run_dir
SPLITS = ("train", "test", "val")
SCALARS = ("loss", "accuracy", "map")   # epoch_<scalar> tags, from the history columns <split>_<scalar>


class Board:
    """Writes history rows ({"epoch", "<split>_<metric>", "seconds"}) as TensorBoard scalars."""

    def __init__(self, run_dir, learning_rate):
        """`learning_rate(epoch) -> float`: the rate in effect during epoch `epoch` (1-based)."""
        self.dir = Path(run_dir) / FOLDER
        self.learning_rate = learning_rate
        self.writers = {}

    def _writer(self, split):
        import tensorflow as tf
        if split not in self.writers:
            self.writers[split] = tf.summary.create_file_writer(str(self.dir / split))
        return self.writers[split]

    def write(self, row):
        """Log one epoch's row and flush, so the board follows training live."""
        import tensorflow as tf
        epoch = int(row["epoch"])
        for split in SPLITS:
            values = {m: row[f"{split}_{m}"] for m in SCALARS if f"{split}_{m}" in row}
            if not values:
                continue
            with self._writer(split).as_default(step=epoch):
                for metric, value in values.items():
                    tf.summary.scalar(f"epoch_{metric}", float(value))
                if split == "train":
                    tf.summary.scalar("epoch_learning_rate", float(self.learning_rate(epoch)))
                    tf.summary.scalar("epoch_seconds", float(row["seconds"]))
        for writer in self.writers.values():
            writer.flush()

    def rewrite(self, history):
        """Start the board over from `history` (resume): exactly one point per epoch and tag."""
        self.close()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for row in history:
            self.write(row)

    def close(self):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
