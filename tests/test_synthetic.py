import numpy as np

from distlmk.data.synthetic import (
    LANDMARKS,
    SyntheticSpec,
    generate,
    load_or_generate,
    spread_noise,
    synthetic_dataset,
)


def test_deterministic_per_seed():
    a = generate(SyntheticSpec(num_images=4, seed=3, size=(160, 128)))
    b = generate(SyntheticSpec(num_images=4, seed=3, size=(160, 128)))
    c = generate(SyntheticSpec(num_images=4, seed=4, size=(160, 128)))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.uint8 and a[0].shape == (4, 160, 128)


def test_landmarks_differ_in_ambiguity():
    """Annotation noise differs by landmark: precise tips vs ambiguous contour points."""
    _, annotated, true, names = generate(SyntheticSpec(num_images=200, seed=0))
    spacing = 0.75
    sd_mm = np.sqrt(((annotated - true) ** 2).sum(-1).mean(0)) * spacing
    assert len(names) == 19
    tip = names.index("upper_incisal_incision")
    contour = names.index("gonion")
    assert sd_mm[contour] > 4 * sd_mm[tip]
    assert sd_mm.max() / sd_mm.min() > 5
    # and anisotropic: gonion's noise is mostly along its contour
    d = (annotated - true)[:, contour]
    eig = np.linalg.eigvalsh(np.cov(d.T))
    assert eig[1] > 5 * eig[0]


def test_landmarks_inside_images_and_varied():
    images, annotated, _, _ = generate(SyntheticSpec(num_images=50, seed=1))
    h, w = images.shape[1:]
    assert annotated[..., 0].min() > 0 and annotated[..., 0].max() < w
    assert annotated[..., 1].min() > 0 and annotated[..., 1].max() < h
    assert annotated.std(axis=0).mean() > 3  # pixels of anatomical/pose variation


def test_cache_round_trip_and_other_landmark_counts(tmp_path):
    spec = SyntheticSpec(num_images=3, num_landmarks=25, seed=2, size=(128, 112))
    imgs, lms, true, names = load_or_generate(spec, str(tmp_path))
    again = load_or_generate(spec, str(tmp_path))
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert np.array_equal(imgs, again[0]) and lms.shape == (3, 25, 2) and len(names) == 25
    ds = synthetic_dataset(
        4, 2, 3, num_landmarks=7, seed=0, size=(128, 112), cache_root=str(tmp_path)
    )
    assert ds.num_landmarks == 7 and [len(v) for v in ds.splits.values()] == [4, 2, 3]
    assert ds.landmark_names == [t[0] for t in LANDMARKS[:7]]


def test_benchmark_knobs_scale_noise_and_evaluate_on_truth(tmp_path):
    """noise_scale multiplies the observer's noise; eval_truth puts exact positions on val/test only."""
    base = SyntheticSpec(num_images=40, seed=5, size=(160, 128), spacing_mm=0.3)
    _, ann1, true1, _ = generate(base)
    _, ann3, true3, _ = generate(SyntheticSpec(num_images=40, seed=5, size=(160, 128), spacing_mm=0.3, noise_scale=3.0))
    np.testing.assert_array_equal(true1, true3)
    np.testing.assert_allclose(ann3 - true3, 3.0 * (ann1 - true1), rtol=1e-9, atol=1e-9)
    ds = synthetic_dataset(20, 10, 10, seed=5, size=(160, 128), cache_root=str(tmp_path), spacing_mm=0.3,
                           noise_scale=3.0, eval_truth=True)
    _, ann, true, _ = load_or_generate(SyntheticSpec(40, 19, 5, (160, 128), 0.3, 3.0), str(tmp_path))
    np.testing.assert_array_equal(ds.landmarks[:20], ann[:20])  # training labels: the noisy observer
    np.testing.assert_array_equal(ds.landmarks[20:], true[20:])  # val/test: exact positions
    assert ds.spacing_mm[0] == 0.3


def test_noise_spread_widens_the_ambiguity_range_around_its_geometric_mean():
    """spread s: each landmark's noise sd becomes g * (sd / g)^s per axis, with the images and the true
    positions unchanged; the ratio of any two landmarks' noise is raised to the power s."""
    spec = dict(num_images=30, seed=7, size=(160, 128), spacing_mm=0.3)
    _, ann1, true1, _ = generate(SyntheticSpec(**spec))
    images2, ann2, true2, _ = generate(SyntheticSpec(**spec, noise_spread=2.0))
    np.testing.assert_array_equal(true1, true2)
    major = np.array([t[3][0] for t in LANDMARKS])
    g = np.exp(np.log(major).mean())
    ratio = np.linalg.norm(ann2 - true2, axis=2).mean(0) / np.linalg.norm(ann1 - true1, axis=2).mean(0)
    precise, ambiguous = major.argmin(), major.argmax()
    assert ratio[precise] < 1 < ratio[ambiguous]  # the precise get more precise, the ambiguous more ambiguous
    assert SyntheticSpec(**spec).key() != SyntheticSpec(**spec, noise_spread=2.0).key()  # its own cache entry
    assert SyntheticSpec(**spec, noise_spread=1.0).key() == SyntheticSpec(**spec).key()
    np.testing.assert_allclose(g * (major / g) ** 2, spread_noise(np.stack([major, major], 1), 2.0)[:, 0])
