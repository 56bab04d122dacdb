"""Landmark data: synthetic, ISBI 2015 and folder loaders, resizing and augmentation."""

from distlmk.data.dataset import DataError, LandmarkDataset
from distlmk.data.load import load_dataset

__all__ = ["DataError", "LandmarkDataset", "load_dataset"]
