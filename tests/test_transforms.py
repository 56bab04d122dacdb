import cv2
import numpy as np
import torch

from distlmk.config import AugmentConfig
from distlmk.data.dataset import LandmarkDataset
from distlmk.data.transforms import Augmenter, prepare_split, to_input, to_original
from distlmk.heatmap import GaussianHeatmapCodec


def blob_image(h, w, pts, sigma):
    codec = GaussianHeatmapCodec((h, w))
    hm = codec.encode(torch.tensor(pts, dtype=torch.float64)[None], float(sigma))[0].sum(0).numpy()
    return (hm / hm.max() * 255).astype(np.uint8)


def test_to_input_and_back_are_inverse():
    pts = np.random.default_rng(0).uniform(0, 500, (3, 4, 2))
    scale = np.array([[3.1, 2.2], [1.0, 1.0], [0.5, 4.0]])
    np.testing.assert_allclose(to_original(to_input(pts, scale), scale), pts, atol=1e-9)


def test_resized_prediction_maps_back_to_original_pixels():
    """A blob at a known original position, resized 4x down, decodes back within a fraction of a pixel."""
    pts = [[101.3, 57.8], [30.0, 150.2]]
    img = blob_image(240, 160, pts, 8.0)
    ds = LandmarkDataset(
        "t", [img], np.array([pts]), np.array([0.1]), ["a", "b"], ["0"], {"test": np.array([0])}
    )
    split = prepare_split(ds, "test", (60, 40))
    codec = GaussianHeatmapCodec((60, 40))
    x = torch.from_numpy(split.images.astype(np.float32))[:, None]
    # decode the resized image itself once per landmark by masking the other blob
    found = []
    for _k, (px, py) in enumerate(split.points[0]):
        m = np.zeros_like(split.images[0], np.float32)
        cv2.circle(m, (int(round(px)), int(round(py))), 6, 1.0, -1)
        dec, _ = codec.decode((x[0, 0] * torch.from_numpy(m))[None, None])
        found.append(dec[0, 0].numpy())
    back = to_original(np.array(found)[None].astype(np.float64), split.scale)
    assert np.abs(back[0] - np.array(pts)).max() < 0.5  # original pixels (4x coarser input)


def test_augmentation_moves_landmarks_with_the_image():
    pts = np.array([[[20.3, 30.7], [45.0, 12.5]]], np.float32)
    img = blob_image(64, 64, pts[0], 2.0)[None]
    aug = Augmenter(
        AugmentConfig(rotation_deg=20, scale=0.1, translate=0.1, intensity=0.0, noise=0.0), (64, 64)
    )
    out, moved = aug(img, pts, np.random.default_rng(5))
    codec = GaussianHeatmapCodec((64, 64))
    for k in range(2):
        m = np.zeros((64, 64), np.float32)
        cv2.circle(m, (int(round(moved[0, k, 0])), int(round(moved[0, k, 1]))), 5, 1.0, -1)
        dec, _ = codec.decode(torch.from_numpy(out[0] * m)[None, None])
        assert np.linalg.norm(dec[0, 0].numpy() - moved[0, k]) < 0.3
