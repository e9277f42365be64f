"""Neural-network building blocks: Module, layers, functional ops, utilities."""
from . import functional, init, utils
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, RMSNorm, Tanh
from .loss import CrossEntropyLoss, L1Loss, MSELoss
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear",
           "Embedding", "LayerNorm", "RMSNorm", "Dropout", "ReLU", "GELU", "Tanh", "MSELoss",
           "L1Loss", "CrossEntropyLoss", "functional", "init", "utils"]
