"""Fixed point: symmetric weight quantization, activation calibration and straight-through fake-quant."""

from bitpruner.quant.activations import ActivationQuant, calibrate_activations, quantize_activation
from bitpruner.quant.fixed_point import (
    QuantConfig,
    QuantizationError,
    QuantizedWeight,
    dequantize,
    qmax,
    quantize_weight,
    weight_scale,
)
from bitpruner.quant.model import fake_quant_model, quantize_model_weights, remove_fake_quant
from bitpruner.quant.ste import FakeQuantWeight, fake_quant, round_ste

__all__ = [
    "ActivationQuant",
    "FakeQuantWeight",
    "QuantConfig",
    "QuantizationError",
    "QuantizedWeight",
    "calibrate_activations",
    "dequantize",
    "fake_quant",
    "fake_quant_model",
    "qmax",
    "quantize_activation",
    "quantize_model_weights",
    "quantize_weight",
    "remove_fake_quant",
    "round_ste",
    "weight_scale",
]
