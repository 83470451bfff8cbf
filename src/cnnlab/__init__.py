"""cnnlab: train and compare small image classifiers, with evidence."""

__version__ = "0.1.0"
