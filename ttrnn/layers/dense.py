"""Dense layers `y = activation(x @ W + b)` whose `(prod n, prod m)` kernel is stored in a factorized format:
`TTDense` (TT-matrix, the TT-MLP's layer) and `TRDense`, `BTDense`, `CPDense`, `HTDense` (`ttrnn.formats`)."""

import math

import keras
from keras import ops

from ttrnn import formats
from ttrnn.formats import tt
from ttrnn.formats.common import is_float
from ttrnn.layers.kernel import FormatArguments, Kernel, TTArguments
from ttrnn.layers.layer_docs import dense_doc


def add_kernel_weights(layer, fmt, initializer, regularizer, constraint):
    """Create the variables of a kernel format (`ttrnn.formats`) on `layer`, in the format's order; return them
    (`Kernel(fmt).build`)."""
    return Kernel(fmt).build(layer, initializer, regularizer, constraint)


def add_tt_cores(layer, n, m, r, initializer, regularizer, constraint):
    """Create the d core variables `tt_core_k` `(r_k, n_k, m_k, r_{k+1})` on `layer`; return them as a list."""
    return add_kernel_weights(layer, tt.TensorTrain(n, m, r), initializer, regularizer, constraint)


def cast_input(x, dtype):
    """Cast uint8 / int inputs (raw video frames) to the layer's compute dtype."""
    x = ops.convert_to_tensor(x)
    return x if x.dtype == dtype else ops.cast(x, dtype)


class _Dense(keras.layers.Layer):
    """A Dense layer over a `Kernel` of format `FORMAT`; the public classes (`_register`) add the format's
    constructor arguments (`ttrnn.layers.kernel.TTArguments` / `FormatArguments`)."""

    FORMAT = None

    def __init__(self, input_modes, output_modes, ranks=None, blocks=None, activation=None, use_bias=True,
                 kernel_initializer=None, bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.kernel = Kernel(formats.make(self.FORMAT, input_modes, output_modes, ranks, blocks))
        self.kernel_format = self.kernel.format
        self.kernel_param_count = self.kernel_format.param_count()
        self.units = math.prod(self.kernel_format.m)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer or tt.TTGlorotNormal())
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        # TensorFlow: oneDNN beats XLA's CPU dot on the contractions (docs/performance.md); JAX has only XLA.
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def build(self, input_shape):
        self.kernel_format.check_input_dim(input_shape[-1])
        self.kernel_weights = self.kernel.build(self, self.kernel_initializer, self.kernel_regularizer,
                                                self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def call(self, inputs):
        x = ops.convert_to_tensor(inputs)
        y = self.kernel.project(cast_input(x, self.compute_dtype) if is_float(x) else x, bounded=False)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(self._format_config())
        config.update({
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        })
        return config


def _register(fmt):
    name = f"{fmt.upper()}Dense"
    body = {"FORMAT": fmt, "__module__": __name__, "__qualname__": name, "__doc__": dense_doc(name, fmt)}
    cls = type(name, (TTArguments if fmt == "tt" else FormatArguments, _Dense), body)
    return keras.saving.register_keras_serializable(package="ttrnn")(cls)


LAYERS = [_register(fmt) for fmt in formats.FORMATS]
globals().update({cls.__name__: cls for cls in LAYERS})
__all__ = [cls.__name__ for cls in LAYERS]
