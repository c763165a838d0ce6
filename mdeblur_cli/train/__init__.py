"""Training: the config (torch-free, so the command line starts fast), the loop, losses, VGG19, checkpoints, the
run log and multi-process training."""
