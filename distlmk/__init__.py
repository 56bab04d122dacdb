"""distlmk: RL-adaptive per-landmark heatmap precision, trained as a population on Ray."""

__version__ = "0.1.0"
