"""Scoring prediction folders with the official protocols (``occ4d eval``): pairing each
prediction with its ground truth and feeding the accumulators of :mod:`occ4d.metrics`."""
