import math

import numpy as np
import pytest
import torch

from distlmk.heatmap import GaussianHeatmapCodec


def test_known_values():
    codec = GaussianHeatmapCodec((9, 11))
    hm = codec.encode(torch.tensor([[[5.0, 4.0]]]), torch.tensor([2.0]))
    assert hm.shape == (1, 1, 9, 11)
    assert hm[0, 0, 4, 5].item() == pytest.approx(1.0)
    assert hm[0, 0, 4, 6].item() == pytest.approx(math.exp(-1 / 8))
    assert hm[0, 0, 5, 6].item() == pytest.approx(math.exp(-2 / 8))


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5, 5.0, 8.0])
def test_round_trip_subpixel(sigma):
    codec = GaussianHeatmapCodec((96, 80))
    g = torch.Generator().manual_seed(int(sigma * 10))
    pts = torch.rand(8, 19, 2, generator=g) * torch.tensor([60.0, 76.0]) + 10
    hm = codec.encode(pts, torch.full((19,), sigma))
    dec, maxval = codec.decode(hm)
    assert (dec - pts).abs().max().item() <= 0.05
    assert maxval.min().item() > 0.5


def test_per_sample_sigma_and_gradient():
    codec = GaussianHeatmapCodec((32, 32))
    pts = torch.tensor([[[10.3, 12.7], [20.0, 5.5]], [[15.0, 15.0], [3.2, 28.9]]])
    sigma = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    hm = codec.encode(pts, sigma)
    assert hm.shape == (2, 2, 32, 32)
    hm.sum().backward()
    assert sigma.grad is not None and torch.all(sigma.grad > 0)  # wider -> more mass
    assert hm[1, 1].sum() > hm[0, 0].sum()


def test_decode_noisy_peak_is_robust():
    codec = GaussianHeatmapCodec((64, 64))
    pts = torch.tensor([[[30.4, 20.6]]])
    hm = codec.encode(pts, 3.0) + 0.02 * torch.randn(
        1, 1, 64, 64, generator=torch.Generator().manual_seed(0)
    )
    dec, _ = codec.decode(hm)
    assert np.linalg.norm((dec - pts).numpy()) < 0.5


def test_anisotropic_with_equal_sigmas_is_isotropic():
    codec = GaussianHeatmapCodec((40, 36))
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(3, 5, 2, generator=g) * 30 + 3
    sig = torch.tensor([1.0, 1.5, 2.0, 3.0, 4.5])
    for angle in (0.0, 0.4, -1.3, 2.0):
        cov = torch.stack([sig, sig, torch.full_like(sig, angle)], dim=-1)
        torch.testing.assert_close(codec.encode_anisotropic(pts, cov), codec.encode(pts, sig), atol=1e-6, rtol=1e-5)


def test_anisotropic_known_values_and_orientation():
    codec = GaussianHeatmapCodec((21, 21))
    pts = torch.tensor([[[10.0, 10.0]]])
    hm = codec.encode_anisotropic(pts, torch.tensor([[4.0, 1.0, 0.0]]))[0, 0]
    assert hm[10, 14].item() == pytest.approx(math.exp(-0.5))  # one sigma_x along x
    assert hm[11, 10].item() == pytest.approx(math.exp(-0.5))  # one sigma_y along y
    rot = codec.encode_anisotropic(pts, torch.tensor([[4.0, 1.0, math.pi / 2]]))[0, 0]
    torch.testing.assert_close(rot, hm.T)  # a quarter turn swaps the axes
    diag = codec.encode_anisotropic(pts, torch.tensor([[4.0, 1.0, math.pi / 4]]))[0, 0]
    assert diag[13, 13] > diag[13, 7]  # the long axis runs down-right (y points down)


@pytest.mark.parametrize("cov", [(3.0, 1.2, 0.3), (1.0, 4.0, -0.9), (2.5, 2.0, 1.4)])
def test_decode_finds_the_centre_of_anisotropic_gaussians(cov):
    codec = GaussianHeatmapCodec((64, 56))
    g = torch.Generator().manual_seed(7)
    pts = torch.rand(4, 6, 2, generator=g) * torch.tensor([36.0, 44.0]) + 10
    hm = codec.encode_anisotropic(pts, torch.tensor([cov] * 6))
    dec, maxval = codec.decode(hm)
    assert (dec - pts).abs().max().item() <= 0.05
    assert maxval.min().item() > 0.5


def test_anisotropic_gradient_reaches_every_parameter():
    codec = GaussianHeatmapCodec((32, 32))
    pts = torch.tensor([[[10.3, 12.7], [20.0, 5.5]]])
    cov = torch.tensor([[2.0, 3.0, 0.3], [4.0, 1.5, -0.7]], requires_grad=True)
    target = codec.encode_anisotropic(pts + 0.7, torch.tensor([[2.5, 2.0, 0.0], [3.0, 3.0, 0.0]]))
    ((codec.encode_anisotropic(pts, cov) - target) ** 2).sum().backward()
    assert cov.grad is not None and torch.all(cov.grad.abs() > 0)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_codec_owns_the_input_to_heatmap_mapping(stride):
    """A point at input pixel (x, y) peaks at heatmap pixel ((x + 0.5) / stride - 0.5, ...) (pixel
    centres at integers in both grids) and decodes back to (x, y) in input pixels."""
    h, w = 96 // stride, 80 // stride
    codec = GaussianHeatmapCodec((h, w), stride)
    g = torch.Generator().manual_seed(stride)
    margin = 10.0  # heatmap px, 5 sigma: the Gaussians are whole on the grid
    pts = (torch.rand(4, 7, 2, generator=g) * torch.tensor([w - 2 * margin, h - 2 * margin]) + margin) * stride  # input px
    hm = codec.encode(pts, 2.0)
    assert hm.shape == (4, 7, h, w)
    expected = (pts + 0.5) / stride - 0.5  # [B, L, 2] heatmap px
    torch.testing.assert_close(codec.to_heatmap(pts), expected)
    # the peak: the Gaussian's centre of mass on the heatmap grid
    ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    mass = hm.sum((-2, -1))
    centre = torch.stack([(hm.sum(-2) * xs).sum(-1) / mass, (hm.sum(-1) * ys).sum(-1) / mass], -1)
    assert (centre - expected).abs().max().item() < 1e-3
    dec, maxval = codec.decode(hm)
    assert dec.dtype == torch.float64 and maxval.min().item() > 0.9
    assert (dec - pts.double()).abs().max().item() < 1e-3
    torch.testing.assert_close(codec.to_input(codec.to_heatmap(pts.double())), pts.double())
    # an exact pixel centre: input (x, y) = heatmap centre j -> (j + 0.5) * stride - 0.5
    on_grid = torch.tensor([[[(5 + 0.5) * stride - 0.5, (7 + 0.5) * stride - 0.5]]])
    peak = codec.encode(on_grid, 1.5)[0, 0]
    assert peak[7, 5].item() == pytest.approx(1.0) and peak.argmax().item() == 7 * w + 5


def test_stride_must_be_positive():
    with pytest.raises(ValueError, match="stride"):
        GaussianHeatmapCodec((8, 8), 0)
