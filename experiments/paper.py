"""The published numbers our tables stand beside, as data, in one place (used by `experiments.tables`).

Source: Yang, Krompass, Tresp, "Tensor-Train Recurrent Neural Networks for Video Classification", ICML 2017,
arXiv 1707.01786 v1. Tables 1 and 2 (UCF11), 4 (Hollywood2) and 6 (YouTube Celebrities), numbered as in the paper
(its other tables compare with published state-of-the-art methods).

"# Parameters" counts the input-to-hidden weights only; "Runtime" is seconds per training epoch, measured on a
quad-core Intel E7-4850 v2 CPU for UCF11 and on a Tesla K40c GPU for Hollywood2 and Celebrities. Hollywood2 is
multi-label and scored by mean average precision (MAP); the paper gives no spread for it.

`SUCCESSORS`: the later tensorized LSTMs on UCF11 and the accuracies they report, each with its protocol;
`FEATURE_SUCCESSORS`: their numbers on per-frame CNN features (UCF11, HMDB51), with the features and split used.
`PUBLISHED_WHOLE`: the whole-model parameter counts the successors publish (the compression table), each with its
source and whether we read that place ourselves; `COMPRESSION_MODELS`: our models that table counts.
"""
from dataclasses import dataclass

SOURCE = ("Yang, Krompass, Tresp: Tensor-Train Recurrent Neural Networks for Video Classification, ICML 2017 "
          "(arXiv 1707.01786 v1)")

# Run-directory model labels (metrics.json "model") in the paper's row order, and how the paper names them.
MODELS = ("tt_mlp", "gru", "lstm", "tt_gru", "tt_lstm")
LABELS = {"tt_mlp": "TT-MLP", "gru": "GRU", "lstm": "LSTM", "tt_gru": "TT-GRU", "tt_lstm": "TT-LSTM"}


@dataclass(frozen=True)
class PaperResult:
    """One cell group of a paper table: score (accuracy or MAP) ± std, input-to-hidden params, s/epoch."""
    score: float
    std: float  # None where the paper gives none
    params: int
    epoch_seconds: float


@dataclass(frozen=True)
class PaperDataset:
    """A dataset's experiment as the paper reports it."""
    name: str          # our dataset name (experiments.<name>, metrics.json "dataset")
    title: str
    tables: tuple      # (params/runtime table, score table); the same table for Hollywood2 and Celebrities
    metric: str        # "accuracy" or "map"
    num_classes: int
    hardware: str
    results: dict      # model label -> PaperResult


DATASETS = {
    "ucf11": PaperDataset(
        "ucf11", "UCF11 (YouTube Action)", ("Table 1", "Table 2"), "accuracy", 11,
        "quad-core Intel E7-4850 v2 (CPU)", {
            "tt_mlp": PaperResult(0.427, 0.045, 7_680, 902),
            "gru": PaperResult(0.488, 0.033, 44_236_800, 7_056),
            "lstm": PaperResult(0.492, 0.026, 58_982_400, 8_892),
            "tt_gru": PaperResult(0.813, 0.011, 3_232, 1_872),
            "tt_lstm": PaperResult(0.796, 0.035, 3_360, 2_160),
        }),
    "hollywood2": PaperDataset(
        "hollywood2", "Hollywood2 (12 actions, multi-label)", ("Table 4", "Table 4"), "map", 12,
        "Tesla K40c (GPU)", {
            "tt_mlp": PaperResult(0.103, None, 4_352, 16),
            "gru": PaperResult(0.249, None, 53_913_600, 106),
            "lstm": PaperResult(0.108, None, 71_884_800, 179),
            "tt_gru": PaperResult(0.537, None, 2_944, 96),
            "tt_lstm": PaperResult(0.546, None, 3_104, 102),
        }),
    "celebfaces": PaperDataset(
        "celebfaces", "YouTube Celebrities (47 people)", ("Table 6", "Table 6"), "accuracy", 47,
        "Tesla K40c (GPU)", {
            "tt_mlp": PaperResult(0.512, 0.057, 3_520, 14),
            "gru": PaperResult(0.342, 0.023, 38_880_000, 212),
            "lstm": PaperResult(0.332, 0.033, 51_840_000, 253),
            "tt_gru": PaperResult(0.800, 0.018, 3_328, 72),
            "tt_lstm": PaperResult(0.755, 0.033, 3_392, 81),
        }),
}

# What the reader of a comparison must know (design notes, "Paper facts").
CAVEATS = (
    "TT-MLP shapes are published nowhere. Ours fold the 6 frames into the first input mode with hidden 4x4x4x4 and "
    "ranks 4 (UCF11 [48,20,20,18], Hollywood2 [60,18,13,30], Celebrities [24,20,20,36]); this matches the paper's "
    "3,520 on Celebrities but gives 3,616 / 3,424 instead of 7,680 / 4,352 on UCF11 / Hollywood2, and no equally "
    "natural shape hits those. We do not pick shapes to hit a number.",
    "The paper's UCF11 prose swaps the TT counts (\"3,360 and 3,232\"); Tables 1 and 2 and the original code give "
    "TT-GRU 3,232 and TT-LSTM 3,360, which is what we list.",
    "On Celebrities the plain GRU/LSTM have 225 hidden units (the original code), the TT models 4x4x4x4 = 256.",
    "The original code differs from the text: UCF11 Adam 1e-4 (text 1e-3), batch 16, 1,001 epochs, clips padded to "
    "1,492 frames; Hollywood2 Adam 1e-3, batch 32, 15 % of the training clips held out, max length 1,496, 501 "
    "epochs; Celebrities Adam 1e-3, batch 16, max length 85, 101 epochs.",
    "The original UCF11 and Celebrities folds split clips at random (seed 11111986), so clips of one group (same "
    "actor and scene) land on both sides; UCF11's own protocol is leave-one-group-out over 25 groups. Each table "
    "row says which protocol our runs used.",
    "Runtimes are per training epoch on the paper's hardware (UCF11 on a CPU, the others on a GPU); ours are from "
    "whatever machine ran the runs, so compare ratios between models, not absolute seconds.",
)

# The TT-RNN's successors on UCF11: (run label, model and paper, reported top-1 accuracy, protocol of that number).
# Ye et al., "Learning Compact Recurrent Neural Networks with Block-Term Tensor Decomposition", CVPR 2018 (its
# abstract: "17,388 times fewer parameters than the standard LSTM"); Pan et al., "Compressing Recurrent Neural
# Networks with Tensor Ring for Action Recognition", AAAI 2019; Yin et al., hierarchical Tucker LSTM. CP-LSTM is
# ours only (no paper reports it on UCF11).
SUCCESSORS = (
    ("tt_lstm", "TT-LSTM (Yang et al., ICML 2017)", 0.796, "random 5-fold split of the clips (the original code)"),
    ("bt_lstm", "BT-LSTM (Ye et al., CVPR 2018)", 0.853, "one random 20 % test split, 6 sampled frames (their code)"),
    ("tr_lstm", "TR-LSTM (Pan et al., AAAI 2019)", 0.869, "one random 20 % test split, 6 sampled frames (their code)"),
    ("ht_lstm", "HT-LSTM (Yin et al.)", 0.879, "not published in a form we could check"),
    ("cp_lstm", "CP-LSTM (ours only)", None, "—"),
)

# Whole models: the TT-RNN paper counts the input-to-hidden weights only; the successors that factorize the
# recurrent weights too report whole models. Run labels of ours (experiments.families.rnn) in the compression
# table's order, per cell: plain, input-only, fully decomposed (recurrent kernel in TT), integrated (TT, HT).
COMPRESSION_MODELS = ("gru", "tt_gru", "tt_gru_fd", "tt_gru_integrated", "ht_gru_integrated",
                      "lstm", "tt_lstm", "tt_lstm_fd", "tt_lstm_integrated", "ht_lstm_integrated")
COMPRESSION_LABELS = {"gru": "GRU", "lstm": "LSTM", "tt_gru": "TT-GRU (input only)", "tt_lstm": "TT-LSTM (input only)",
                      "tt_gru_fd": "TT-GRU, recurrent kernel in TT", "tt_lstm_fd": "TT-LSTM, recurrent kernel in TT",
                      "tt_gru_integrated": "TT-GRU integrated", "tt_lstm_integrated": "TT-LSTM integrated",
                      "ht_gru_integrated": "HT-GRU integrated", "ht_lstm_integrated": "HT-LSTM integrated (FDHT)"}
FDHT_SOURCE = ("Yin et al.: Towards Extremely Compact RNNs for Video Recognition with Fully Decomposed Hierarchical "
               "Tucker Structure, CVPR 2021 (arXiv 2104.05758)")


@dataclass(frozen=True)
class PublishedWhole:
    """A whole-model parameter count a paper publishes: `low` (and `high` where it gives a range over its
    datasets), or None where we found none; `source` says which paper and where in it; `checked` False where we
    quote it from another text without having read that place ourselves. `compare_on`: our datasets whose model
    of the same kind stands beside it."""
    label: str          # our run label of the same model (the compression table puts ours beside it)
    name: str
    low: int
    high: int
    datasets: str
    compare_on: tuple
    source: str
    checked: bool


PUBLISHED_WHOLE = (
    PublishedWhole("tt_lstm", "TT-LSTM (Yang et al., ICML 2017)", 268_000, None, "UCF11", ("ucf11",),
                   "the FDHT paper's UCF11 comparison with TT-, TR- and BT-LSTM: 0.268 M", False),
    PublishedWhole("ht_lstm_integrated", "FDHT-LSTM (Yin et al., CVPR 2021)", 3_132, 8_808,
                   "its video datasets (the range over them)", tuple(DATASETS),
                   "the FDHT paper's abstract: whole models of 3,132 to 8,808 parameters over its datasets", True),
    PublishedWhole("bt_lstm", "BT-LSTM (Ye et al., CVPR 2018)", None, None, "UCF11", (),
                   "none found; its abstract's 17,388 times fewer parameters than the standard LSTM we read as the "
                   "input-to-hidden weights (58,982,400 / 17,388 = 3,392)", True),
    PublishedWhole("tr_lstm", "TR-LSTM (Pan et al., AAAI 2019)", None, None, "UCF11", (),
                   "none found in what we could read", True),
)

# The successors' numbers on CNN features (their other table): (dataset, run label, model and paper, reported
# top-1 accuracy, input-to-hidden parameters reported (a count, or a text saying why there is none), features,
# split of that number).
# Pan et al., "Compressing Recurrent Neural Networks with Tensor Ring for Action Recognition", AAAI 2019 (arXiv
# 1811.07503): its CNN-feature experiments on UCF11 and HMDB51; the accuracies are those the paper's benchmark
# listings carry; its table's parameter counts, backbone and split could not be checked here, so they read
# "not confirmed". tednet (github.com/tnbar/tednet, ext/benchmark/experiment_ucf11: draw_result.py's legend,
# cls_rnn_tn.py's models): LSTMs with input modes 64x32 and hidden 32x64 (2,048 units) over a 512x2x2 feature map
# per frame, one random 20 % test split (UCF11Info test_rate 0.2), TR ranks 20, TT rank 10.
FEATURE_SUCCESSORS = (
    ("ucf11", "tr_lstm", "TR-LSTM (Pan et al., AAAI 2019)", 0.938, "not confirmed", "CNN features (not confirmed)",
     "not confirmed"),
    ("hmdb51", "tr_lstm", "TR-LSTM (Pan et al., AAAI 2019)", 0.638, "not confirmed", "CNN features (not confirmed)",
     "not confirmed"),
    ("ucf11", "tr_lstm", "TR-LSTM (tednet benchmark)", 0.9209, "none (compression 146x)", "512x2x2 CNN feature map",
     "one random 20 % test split"),
    ("ucf11", "tt_lstm", "TT-LSTM (tednet benchmark)", 0.9019, "none (compression 164x)", "512x2x2 CNN feature map",
     "one random 20 % test split"),
    ("ucf11", "lstm", "LSTM (tednet benchmark)", 0.8703, "none", "512x2x2 CNN feature map",
     "one random 20 % test split"),
)
FEATURE_SOURCES = (
    "Pan et al., Compressing Recurrent Neural Networks with Tensor Ring for Action Recognition, AAAI 2019 "
    "(arXiv 1811.07503)",
    "tednet, github.com/tnbar/tednet, ext/benchmark/experiment_ucf11 (draw_result.py, model/cls_rnn_tn.py)",
)
