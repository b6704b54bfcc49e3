"""Load a `.keras` model that uses ttrnn layers: registers every ttrnn class first, then defers to Keras."""
import importlib

# Modules whose import registers serializable classes (layers, activations, initializers, baseline parts).
_REGISTERING = ("ttrnn.layers", "ttrnn.formats.tt", "ttrnn.baselines")


def register_all():
    """Import every module that registers ttrnn classes with Keras (idempotent)."""
    for name in _REGISTERING:
        importlib.import_module(name)


def load_model(path, compile=False):
    """`keras.models.load_model` for models built from ttrnn layers (e.g. a run directory's model.keras)."""
    import keras
    register_all()
    return keras.models.load_model(path, compile=compile)
