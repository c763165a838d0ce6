"""Evaluation: metrics, the Richardson-Lucy baseline, validation during training, the benchmark, figures and the
trust-map benchmark."""
