"""Models: bundles (a classifier with its preprocessing and CAM layers), the named models
(offline default and torchvision zoo), the model-source registry (torchvision, timm, Hugging Face,
ONNX, TorchScript, the operator's own factories), the small CNN that ROAR retrains, and a user's
own model files read safely."""

from .bundle import ModelBundle, conv_layer_names, default_batch_size, default_device, make_bundle, state_dict_digest
from .class_names import CLASS_NAMES_SUFFIXES, parse_class_names
from .errors import CustomModelError, ModelUnavailableError
from .preprocessing import (
    IMAGENET_MEAN, IMAGENET_STD, Preprocessing, architecture_names, cam_layer_options, parse_floats, preprocessing_for,
    preprocessing_of, with_settings,
)
from .state_dicts import STATE_DICT_SUFFIXES, build_torchvision_model, fit_report, read_state_dict
from .torchscript import TORCHSCRIPT_SUFFIXES, ScriptedClassifier, load_torchscript, scripted_conv_layer_names
from .uploads import UploadedModel, load_uploaded_model
from .sources.registry import output_count
from .zoo import (
    DEFAULT_MODEL, imagenet_class_names, list_models, zoo_cam_layers, zoo_model_names, zoo_preprocessing,
    zoo_weight_path,
)
from .sources import LoadRequest, WeightsFile, get_source, list_sources, load_reference
from .sources.registry import load_model

__all__ = [
    "ModelBundle", "conv_layer_names", "default_batch_size", "default_device", "make_bundle", "state_dict_digest",
    "CLASS_NAMES_SUFFIXES", "parse_class_names", "CustomModelError", "ModelUnavailableError",
    "IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "architecture_names", "cam_layer_options", "parse_floats",
    "preprocessing_for", "preprocessing_of", "with_settings", "STATE_DICT_SUFFIXES", "build_torchvision_model",
    "fit_report", "read_state_dict", "TORCHSCRIPT_SUFFIXES", "ScriptedClassifier", "load_torchscript",
    "scripted_conv_layer_names", "UploadedModel", "load_uploaded_model", "output_count", "DEFAULT_MODEL",
    "imagenet_class_names", "list_models", "load_model", "zoo_cam_layers", "zoo_model_names", "zoo_preprocessing",
    "zoo_weight_path", "LoadRequest", "WeightsFile", "get_source", "list_sources", "load_reference",
]
