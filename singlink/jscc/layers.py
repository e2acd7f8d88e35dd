"""Building blocks of the DeepJSCC encoder/decoder (the DeepWiVe key-frame / InverseJSCC family).

Written here because CompressAI (which has GDN and the attention block) depends on torchvision,
which cannot be installed on this project's machines (ENVIRONMENT.md).
"""
import torch
from torch import nn
from torch.nn import functional as F


class GDN(nn.Module):
    r"""Generalised divisive normalisation (Ballé et al., 2016) and its inverse (IGDN).

    .. math:: y_i = x_i \big/ \sqrt{\beta_i + \textstyle\sum_j \gamma_{ij} x_j^2}
              \qquad (\text{IGDN: } y_i = x_i \sqrt{\cdot})

    beta and gamma are kept non-negative by the squared reparameterisation with a small
    pedestal, as in Ballé's and CompressAI's implementations.
    """

    pedestal = 2.0**-36

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_bound = (beta_min + self.pedestal) ** 0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self.pedestal))

    def forward(self, x):
        beta = torch.clamp(self.beta, min=self.beta_bound) ** 2 - self.pedestal
        gamma = torch.clamp(self.gamma, min=self.pedestal**0.5) ** 2 - self.pedestal
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class AFModule(nn.Module):
    r"""Attention-feature module of ADJSCC (Xu et al., 2021), which makes one model SNR-adaptive:

    .. math:: \mathbf s = \sigma\big(W_2\,\mathrm{ReLU}(W_1 [\mathrm{GAP}(F);\ \mathrm{SNR}])\big),
              \qquad F' = \mathbf s \odot F

    (channel-wise scaling conditioned on the pooled features and the SNR in dB).
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc = nn.Sequential(nn.Linear(channels + 1, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x, snr_db):
        context = torch.cat([x.mean(dim=(2, 3)), snr_db.to(x.dtype)[:, None]], dim=1)
        return x * self.fc(context)[:, :, None, None]


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a PReLU and a GDN (IGDN in the decoder) and an identity skip."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels),
                                  nn.Conv2d(channels, channels, 3, padding=1), GDN(channels, inverse))

    def forward(self, x):
        return x + self.body(x)


class AttentionBlock(nn.Module):
    r"""Simplified attention module (Cheng et al., 2020), as used by DeepWiVe:
    :math:`x + \mathrm{trunk}(x) \odot \sigma(\mathrm{mask}(x))`, each branch a bottleneck
    residual unit (1x1 -> 3x3 -> 1x1)."""

    def __init__(self, channels: int):
        super().__init__()

        def unit():
            mid = channels // 2
            return nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(), nn.Conv2d(mid, mid, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(mid, channels, 1))

        self.trunk, self.mask_unit = unit(), unit()
        self.mask_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        trunk = x + self.trunk(x)
        mask = torch.sigmoid(self.mask_out(x + self.mask_unit(x)))
        return x + trunk * mask
