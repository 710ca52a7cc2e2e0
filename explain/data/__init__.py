"""Data: images in (samples, safe decoding of user files), labelled datasets (zips,
server folders, uploads) and labelled tensors for training."""

from .datasets import IMAGE_SUFFIXES, DatasetError, DatasetLimits, ImageDataset, dataset_from_folder, dataset_from_uploads, dataset_from_zip
from .images import MAX_BYTES, MAX_PIXELS, UPLOAD_EXTENSIONS, ImageLoadError, NamedImage, image_digest, load_image_bytes, load_sample, sample_names

__all__ = [
    "IMAGE_SUFFIXES", "DatasetError", "DatasetLimits", "ImageDataset", "dataset_from_folder", "dataset_from_uploads",
    "dataset_from_zip", "MAX_BYTES", "MAX_PIXELS", "UPLOAD_EXTENSIONS", "ImageLoadError", "NamedImage", "image_digest",
    "load_image_bytes", "load_sample", "sample_names",
]
