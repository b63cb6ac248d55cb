"""Light train-time augmentation on normalized [C, H, W] tensors (no torchvision needed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CropFlip:
    """Random crop after zero padding (zero = the mean color after normalization) and a random
    horizontal flip, the standard CIFAR recipe. Draws from torch's global RNG, which Lightning's
    `seed_everything(workers=True)` and the DataLoader's worker seeding make reproducible."""

    def __init__(self, padding: int = 4, flip: bool = True, fill_background: bool = False):
        if padding < 0:
            raise ValueError(f"crop_padding={padding}: expected >= 0")
        self.padding = int(padding)
        self.flip = bool(flip)
        # Digits on a flat background: pad with the background (the image minimum), not the mean.
        self.fill_background = bool(fill_background)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.padding:
            height, width = image.shape[-2:]
            fill = float(image.min()) if self.fill_background else 0.0
            padded = F.pad(image, (self.padding,) * 4, value=fill)
            top, left = torch.randint(0, 2 * self.padding + 1, (2,)).tolist()
            image = padded[..., top : top + height, left : left + width]
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image.contiguous()

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip}, fill_background={self.fill_background})"
