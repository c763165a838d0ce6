"""Restoring: the tile engine (tiles), what an array means (arrays: planes, channels, alpha, NaN), intensity
normalisation and its inverse (normalize), trust maps (trust), and one file read, restored and written (files)."""
