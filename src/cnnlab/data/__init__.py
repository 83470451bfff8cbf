"""Datasets: canonical-file readers, the registry, the device loader and augmentation."""
