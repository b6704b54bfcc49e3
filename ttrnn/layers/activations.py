"""Activations needed by the "paper" preset."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ttrnn")
def hard_sigmoid(x):
    """Keras 1/2 (Theano-era) hard sigmoid: `clip(0.2 x + 0.5, 0, 1)`.

    Keras 3's `hard_sigmoid` is `relu6(x + 3) / 6` (slope 1/6), a different function; the original TT-RNN code
    used this one as the GRU/LSTM recurrent activation.
    """
    x = ops.convert_to_tensor(x)
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)
