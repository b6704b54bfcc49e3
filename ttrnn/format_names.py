"""The kernel formats' names, in one place and without Keras: the CLIs check `--decomposition` before TensorFlow
starts (experiments/families/rnn.py), and `ttrnn.formats.FORMATS` maps each name to its class.

tt tensor train (TT-RNN), tr tensor ring (TR-LSTM), bt block-term Tucker (BT-LSTM), cp canonical polyadic, ht
hierarchical Tucker (HT-LSTM).
"""

FORMAT_NAMES = ("tt", "tr", "bt", "cp", "ht")
