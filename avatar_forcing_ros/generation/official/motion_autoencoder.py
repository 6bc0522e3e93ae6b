"""The motion auto-encoder of the released network (FLOAT / LIA style), written here.

- ``enc.net_app``: a conv pyramid, 512x512 RGB in [-1, 1] -> a 512-d identity code and the
  feature maps of every scale (8x8 .. 512x512) that the decoder warps;
- ``enc.fc``: 5 linear layers, code -> 20 motion coefficients;
- ``dec.direction``: 20 orthonormal 512-d directions (QR of a learned 512x20 matrix); a motion
  latent is coefficients @ directions.T;
- ``dec``: a StyleGAN2-like decoder driven by the 512-d latent (identity code + motion latent):
  at each scale it predicts a flow field and a mask that warp the identity's feature map, and
  accumulates RGB from the warped features.

Parameter names follow the released state dict (``motion_autoencoder.*`` of
``motion_autoencoder.pth``); the blur kernels are constants computed here, not weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import OfficialConfig

SQRT2 = math.sqrt(2.0)


def _blur_kernel(gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def fir(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int], up: int = 1) -> torch.Tensor:
    """Zero-insert upsample by ``up``, pad (before, after) on both axes, then the same FIR
    filter on every channel (channels folded into the batch: one static 1x1xKxK kernel)."""
    n, c, h, w = x.shape
    if up > 1:   # each sample followed by up - 1 zeros along both axes
        x = F.pad(x[:, :, :, None, :, None], [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    out = F.conv2d(x.reshape(n * c, 1, x.shape[2], x.shape[3]), torch.flip(kernel, [0, 1]).to(x)[None, None])
    return out.reshape(n, c, out.shape[2], out.shape[3])


class BiasLeakyReLU(nn.Module):
    """leaky_relu(x + bias, 0.2) * sqrt(2) (``FusedLeakyReLU`` in the release)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return F.leaky_relu(x + self.bias, 0.2) * SQRT2


class EqualConv(nn.Module):
    """Conv with weights stored at unit scale and multiplied by 1/sqrt(fan_in) when used."""

    def __init__(self, c_in, c_out, k, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(c_in * k * k), stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    def __init__(self, n_in, n_out, bias_init=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.full((n_out,), float(bias_init)))
        self.scale = 1 / math.sqrt(n_in)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


class _Blur(nn.Module):
    """Placeholder at the index where the release keeps its blur (a buffer, no weights)."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return fir(x, _blur_kernel(), self.pad)


def conv_layer(c_in, c_out, k, down=False, bias=True, activate=True) -> nn.Sequential:
    """[blur] + EqualConv (+ bias-leaky-relu): indices as the release's ConvLayer."""
    layers = []
    if down:
        p = 2 + (k - 1)
        layers.append(_Blur(((p + 1) // 2, p // 2)))
    layers.append(EqualConv(c_in, c_out, k, stride=2 if down else 1, padding=0 if down else k // 2,
                            bias=bias and not activate))
    if activate:
        layers.append(BiasLeakyReLU(c_out) if bias else nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class ResDown(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = conv_layer(c_in, c_in, 3)
        self.conv2 = conv_layer(c_in, c_out, 3, down=True)
        self.skip = conv_layer(c_in, c_out, 1, down=True, bias=False, activate=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class AppearanceEncoder(nn.Module):
    def __init__(self, size: int, dim: int, channels: dict):
        super().__init__()
        log = int(math.log2(size))
        self.convs = nn.ModuleList([conv_layer(3, channels[size], 1)])
        c = channels[size]
        for i in range(log, 2, -1):
            self.convs.append(ResDown(c, channels[2 ** (i - 1)]))
            c = channels[2 ** (i - 1)]
        self.convs.append(EqualConv(c, dim, 4, bias=False))

    def forward(self, x):
        """(B, 3, S, S) -> code (B, dim), feature maps [8x8, 16x16, ..., SxS]."""
        maps = []
        for conv in self.convs:
            x = conv(x)
            maps.append(x)
        return x.flatten(1), maps[::-1][2:]


class Encoder(nn.Module):
    def __init__(self, size, dim, motion_dim, channels):
        super().__init__()
        self.net_app = AppearanceEncoder(size, dim, channels)
        self.fc = nn.Sequential(*[EqualLinear(dim, dim) for _ in range(4)], EqualLinear(dim, motion_dim))


class Directions(nn.Module):
    def __init__(self, motion_dim, dim=512):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, motion_dim))

    def basis(self) -> torch.Tensor:
        q, _ = torch.linalg.qr(self.weight + 1e-8)
        return q                                       # (512, 20), orthonormal columns

    def forward(self, coefficients):
        return coefficients @ self.basis().T


class ModulatedConv(nn.Module):
    def __init__(self, c_in, c_out, k, style_dim, demodulate=True, up=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, c_out, c_in, k, k))
        self.modulation = EqualLinear(style_dim, c_in, bias_init=1.0)
        self.scale, self.k, self.demodulate, self.up = 1 / math.sqrt(c_in * k * k), k, demodulate, up

    def forward(self, x, style):
        """StyleGAN2's modulated conv, computed as: scale the input channels by the style, one
        shared convolution, scale the output channels by the demodulation (equal to per-sample
        modulated weights, and exports to ONNX with static weights)."""
        b = x.shape[0]
        s = self.modulation(style)                                         # (b, c_in)
        w = self.scale * self.weight[0]                                    # (c_out, c_in, k, k)
        x = x * s.view(b, -1, 1, 1)
        if self.up:   # transposed conv, stride 2, then blur
            out = fir(F.conv_transpose2d(x, w.transpose(0, 1), stride=2), _blur_kernel(4.0), (1, 1))
        else:
            out = F.conv2d(x, w, padding=self.k // 2)
        if self.demodulate:   # 1 / |w * s| per sample and output channel
            demod = torch.rsqrt((w.pow(2).sum([2, 3])[None] * s.pow(2)[:, None, :]).sum(2) + 1e-8)
            out = out * demod.view(b, -1, 1, 1)
        return out


class _Noise(nn.Module):
    """The release's noise injection; inference passes no noise, so it is the identity."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class StyledConv(nn.Module):
    def __init__(self, c_in, c_out, k, style_dim, up=False):
        super().__init__()
        self.conv = ModulatedConv(c_in, c_out, k, style_dim, up=up)
        self.noise = _Noise()
        self.activate = BiasLeakyReLU(c_out)

    def forward(self, x, style):
        return self.activate(self.conv(x, style))


class ToRGB(nn.Module):
    def __init__(self, c_in):
        super().__init__()
        self.conv = conv_layer(c_in, 3, 1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, skip=None):
        out = self.conv(x) + self.bias
        return out if skip is None else out + upsample2(skip)


def upsample2(x):
    return fir(x, _blur_kernel(4.0), (2, 1), up=2)


class ToFlow(nn.Module):
    """Flow field (tanh, 2 ch) and mask (sigmoid, 1 ch) that warp the identity's features."""

    def __init__(self, c_in, style_dim):
        super().__init__()
        self.conv = ModulatedConv(c_in, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, feat, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + upsample2(skip)
        n, _, h, w = x.shape
        lin = torch.linspace(-1.0, 1.0, h, dtype=torch.float64).float().to(x.device)
        grid = torch.stack([lin[None, :].expand(h, w), lin[:, None].expand(h, w)], dim=-1)
        mask = torch.sigmoid(out[:, 2:3])
        warped = F.grid_sample(feat, torch.tanh(out[:, :2]).permute(0, 2, 3, 1) + grid,
                               align_corners=False) * mask
        return warped, warped + x * (1.0 - mask), out


class Decoder(nn.Module):
    def __init__(self, size, style_dim, motion_dim, channels):
        super().__init__()
        self.direction = Directions(motion_dim, style_dim)
        c4 = channels[4]
        self.input = nn.Module()
        self.input.input = nn.Parameter(torch.randn(1, c4, 4, 4))
        self.conv1 = StyledConv(c4, c4, 3, style_dim)
        self.to_rgb1 = ToRGB(c4)    # in the release's weights, unused by its decoder
        self.convs, self.to_rgbs, self.to_flows = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = c4
        for i in range(3, int(math.log2(size)) + 1):
            co = channels[2 ** i]
            self.convs.append(StyledConv(c, co, 3, style_dim, up=True))
            self.convs.append(StyledConv(co, co, 3, style_dim))
            self.to_rgbs.append(ToRGB(co))
            self.to_flows.append(ToFlow(co, style_dim))
            c = co

    def forward(self, latent, feats):
        """latent (B, 512) = identity code + motion latent; feats: the identity's maps
        (batch 1 or B). Returns RGB (B, 3, S, S), roughly in [-1, 1]."""
        b = latent.shape[0]
        x = self.conv1(self.input.input.expand(b, -1, -1, -1), latent)
        rgb = flow = None
        for j, (to_rgb, to_flow, feat) in enumerate(zip(self.to_rgbs, self.to_flows, feats)):
            x = self.convs[2 * j + 1](self.convs[2 * j](x, latent), latent)
            feat = feat.expand(b, -1, -1, -1) if feat.shape[0] != b else feat
            warped, x, flow = to_flow(x, latent, feat, flow)
            rgb = to_rgb(warped, rgb)
        return rgb


class MotionAutoencoder(nn.Module):
    def __init__(self, cfg: OfficialConfig):
        super().__init__()
        self.cfg = cfg
        self.enc = Encoder(cfg.image_size, cfg.latent_dim, cfg.motion_dim, cfg.channels)
        self.dec = Decoder(cfg.image_size, cfg.latent_dim, cfg.motion_dim, cfg.channels)

    @torch.inference_mode()
    def encode_identity(self, image: torch.Tensor):
        """The avatar's portrait (1, 3, S, S) -> (identity code, identity motion, feature maps)."""
        code, feats = self.enc.net_app(image)
        return code, self.dec.direction(self.enc.fc(code)), feats

    @torch.inference_mode()
    def encode_motion(self, images: torch.Tensor) -> torch.Tensor:
        """Face crops (B, 3, S, S) -> motion latents (B, 512) (the user's face)."""
        code, _ = self.enc.net_app(images)
        return self.dec.direction(self.enc.fc(code))

    @torch.inference_mode()
    def decode(self, code: torch.Tensor, motion: torch.Tensor, feats) -> torch.Tensor:
        """identity code (1, 512) + motion latents (B, 512) -> images (B, 3, S, S)."""
        return self.dec(code + motion, feats)
