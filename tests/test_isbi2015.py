import cv2
import numpy as np
import pytest

from distlmk.data.dataset import DataError
from distlmk.data.isbi2015 import NUM_LANDMARKS, load_isbi2015

W, H = 194, 240  # small stand-ins for 1935 x 2400; the loader reads any size


def _write_annotation(path, pts, extra=8):
    lines = [f"{int(x)},{int(y)}" for x, y in pts] + [str(i % 3 + 1) for i in range(extra)]
    path.write_text("\n".join(lines) + "\n")


def make_isbi(root, layout="nested", counts=(4, 3, 2)):
    rng = np.random.default_rng(0)
    ann = root / "AnnotationsByMD" if layout == "nested" else root
    truth = {}
    num = 1
    for folder, n in zip(("TrainingData", "Test1Data", "Test2Data"), counts, strict=True):
        (root / "RawImage" / folder).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            stem = f"{num:03d}"
            img = rng.integers(0, 255, (H, W), dtype=np.uint8)
            cv2.imwrite(str(root / "RawImage" / folder / f"{stem}.bmp"), np.dstack([img] * 3))
            senior = rng.integers(5, [W - 5, H - 5], (NUM_LANDMARKS, 2))
            junior = senior + rng.integers(-3, 4, senior.shape)
            for who, pts in (("senior", senior), ("junior", junior)):
                (ann / f"400_{who}").mkdir(parents=True, exist_ok=True)
                _write_annotation(ann / f"400_{who}" / f"{stem}.txt", pts)
            truth[stem] = (senior, junior)
            num += 1
    return truth


@pytest.mark.parametrize("layout", ["nested", "top"])
def test_loads_exact_layout_with_mean_ground_truth(tmp_path, layout):
    truth = make_isbi(tmp_path, layout)
    ds = load_isbi2015(tmp_path, "mean", val_fraction=0.25)
    assert set(ds.splits) == {"train", "val", "Test1", "Test2"}
    assert len(ds.splits["train"]) + len(ds.splits["val"]) == 4
    assert len(ds.splits["Test1"]) == 3 and len(ds.splits["Test2"]) == 2
    assert (
        ds.num_landmarks == 19
        and ds.landmark_names[0] == "sella"
        and ds.landmark_names[18] == "articulare"
    )
    assert np.all(ds.spacing_mm == 0.1)
    assert ds.images[0].shape == (H, W) and ds.images[0].ndim == 2
    i = ds.image_ids.index("006")
    senior, junior = truth["006"]
    np.testing.assert_allclose(ds.landmarks[i], (senior + junior) / 2)
    np.testing.assert_allclose(load_isbi2015(tmp_path, "senior").landmarks[i], senior)
    np.testing.assert_allclose(load_isbi2015(tmp_path, "junior").landmarks[i], junior)
    assert ds.test_splits == ["Test1", "Test2"]


def test_truncated_annotation_names_file(tmp_path):
    make_isbi(tmp_path)
    bad = tmp_path / "AnnotationsByMD" / "400_junior" / "002.txt"
    bad.write_text("\n".join(bad.read_text().splitlines()[:10]))
    with pytest.raises(DataError, match=r"400_junior/002\.txt: 10 landmark lines, expected 19"):
        load_isbi2015(tmp_path)


def test_bad_line_and_outside_point(tmp_path):
    make_isbi(tmp_path)
    f = tmp_path / "AnnotationsByMD" / "400_senior" / "003.txt"
    lines = f.read_text().splitlines()
    lines[4] = "12;abc"
    f.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"003\.txt:5: expected 'x,y'"):
        load_isbi2015(tmp_path)
    lines[4] = f"{W + 500},10"
    f.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"003\.txt: landmark 4 .* outside"):
        load_isbi2015(tmp_path, "senior")


def test_corrupt_image_named(tmp_path):
    make_isbi(tmp_path)
    (tmp_path / "RawImage" / "Test1Data" / "005.bmp").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"005\.bmp: unreadable image"):
        load_isbi2015(tmp_path)
