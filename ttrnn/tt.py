"""`ttrnn.tt` is `ttrnn.formats.tt` (the TT format moved there with the other formats): one module under two
names, so `from ttrnn import tt` and saved references keep working."""
import sys

from ttrnn.formats import tt as _tt

sys.modules[__name__] = _tt
