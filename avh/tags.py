"""The names runs write and readers (report.py, the dashboard, tests) read: TensorBoard tags, and
the JSON files beside the events in a run folder of the app.

A contract with existing logs: change a name only with a reader for the old one. No TensorFlow here.
"""

HISTOGRAM_TAG = "activations/{layer}"                 # e.g. activations/3_conv3
STAT_TAG = "activation_stats/{layer}/{stat}"          # stat in STATS
STATS = ("mean", "std", "nonpositive_fraction")
PLOT_TAG = "activation_plots/{layer}/{kind}"          # kind in PLOT_KINDS
PLOT_KINDS = ("map", "histogram")
TRAIN_TAG = "train/{metric}"                          # metric: loss, accuracy
TEST_TAG = "test/{metric}"
TEST_SUBSET_TAG = "test_subset/{metric}"            # the first test images, ~10x a run
# The paper's view of a layer fed by weights (avh.moments): omega, tau (means over units, with
# their spread), the input-correlation factor Var(z) / (tau nu_in), and predicted output moments.
MOMENT_TAG = "moments/{layer}/{stat}"
MOMENT_STATS = ("omega", "omega_spread", "tau", "tau_spread", "input_correlation",
                "predicted_mean", "predicted_std", "predicted_std_given_preactivation")
MOMENT_MAP_TAG = "activation_plots/moment_map"         # SELU layers' (mean, variance) over training
# The backward signal on the probe batch and its labels: the gradient of the loss with respect to
# each logged layer's output (a histogram, and its std, RMS and share of exact zeros), and for each
# layer with a kernel the weight gradient's norm and the update-to-weight ratio
# ||w_t - w_prev|| / ||w_prev|| since the previous summary step. A kernel takes the tag of the
# logged layer it feeds (or is), else its own name.
GRADIENT_TAG = "gradients/{layer}"                    # a histogram, as HISTOGRAM_TAG
GRADIENT_STAT_TAG = "gradient_stats/{layer}/{stat}"   # stat in GRADIENT_STATS
GRADIENT_STATS = ("std", "rms", "zero_fraction")
WEIGHT_TAG = "weights/{layer}/{stat}"                 # stat in WEIGHT_STATS
WEIGHT_STATS = ("gradient_norm", "update_ratio")
# The app's run overview (avh_app.overview): the settings as Text, and the Custom Scalars layout.
CONFIG_TEXT_TAG = "config"

# A run folder of the app, beside its event files: every setting (and the data, versions), and the
# final metrics, written when the run ends (so a folder without it is unfinished).
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
