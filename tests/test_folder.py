import cv2
import numpy as np
import pytest

from distlmk.cli import main
from distlmk.data.dataset import DataError
from distlmk.data.folder import load_folder, write_folder
from distlmk.data.synthetic import synthetic_dataset


def make_folder(root, n=5, num_l=3, size=(40, 50)):
    (root / "images").mkdir(parents=True)
    rows = ["image,landmark,x,y"]
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"im{i}.png"), np.full(size, 100 + i, np.uint8))
        rows += [f"im{i}.png,{k},{5 + k + i},{6 + k}" for k in range(num_l)]
    (root / "landmarks.csv").write_text("\n".join(rows) + "\n")
    return root


def test_loads_and_defaults(tmp_path):
    ds = load_folder(make_folder(tmp_path))
    assert ds.num_landmarks == 3 and len(ds.images) == 5 and ds.landmark_names[0] == "landmark_0"
    assert sum(len(v) for v in ds.splits.values()) == 5 and ds.test_splits == ["test"]
    np.testing.assert_allclose(
        ds.landmarks[ds.image_ids.index("im2.png")], [[7, 6], [8, 7], [9, 8]]
    )


def test_missing_landmark_names_row(tmp_path):
    root = make_folder(tmp_path)
    lines = (root / "landmarks.csv").read_text().splitlines()
    del lines[5]  # im1.png landmark 1
    (root / "landmarks.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"landmarks\.csv:5: image 'im1\.png' has 2 landmarks, expected 3"
    ):
        load_folder(root)


def test_outside_and_bad_number_and_missing_image(tmp_path):
    root = make_folder(tmp_path)
    csv = root / "landmarks.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines[:3], "im0.png,2,500,6", *lines[4:]]) + "\n")
    with pytest.raises(
        DataError, match=r"landmarks\.csv:4 \(im0\.png, landmark 2\): .* outside the 50x40 image"
    ):
        load_folder(root)
    csv.write_text("\n".join([*lines[:3], "im0.png,2,x,6", *lines[4:]]) + "\n")
    with pytest.raises(DataError, match=r"landmarks\.csv:4: landmark must be an integer"):
        load_folder(root)
    csv.write_text("\n".join(lines) + "\n")
    (root / "images" / "im3.png").unlink()
    with pytest.raises(DataError, match=r"image 'im3\.png' not found"):
        load_folder(root)


def test_unreadable_image_and_meta_errors(tmp_path):
    root = make_folder(tmp_path)
    (root / "images" / "im4.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"im4\.png: unreadable image"):
        load_folder(root)
    root2 = make_folder(tmp_path / "b")
    (root2 / "meta.yaml").write_text("spacing: 0.1\n")
    with pytest.raises(DataError, match=r"meta\.yaml: unknown key"):
        load_folder(root2)


def test_synth_roundtrip_and_cli_check(tmp_path, capsys):
    ds = synthetic_dataset(
        6, 2, 2, num_landmarks=5, seed=1, size=(96, 80), cache_root=str(tmp_path / "c")
    )
    root = write_folder(ds, tmp_path / "set")
    back = load_folder(root)
    assert back.landmark_names == ds.landmark_names
    assert {k: len(v) for k, v in back.splits.items()} == {"train": 6, "val": 2, "test": 2}
    np.testing.assert_allclose(back.landmarks, ds.landmarks, atol=1e-3)
    assert back.spacing_mm[0] == pytest.approx(ds.spacing_mm[0])
    assert main(["data", "check", "--format", "folder", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "landmarks: 5" in out and "train=6" in out and "first image" in out


def test_cli_check_bad_data_exits_nonzero(tmp_path, capsys):
    root = make_folder(tmp_path)
    (root / "images" / "im1.png").write_bytes(b"garbage")
    assert main(["data", "check", "--format", "folder", "--root", str(root)]) == 2
    assert "im1.png: unreadable image" in capsys.readouterr().err


def test_cli_synth_writes_folder(tmp_path):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "s"),
                "--train",
                "3",
                "--val",
                "1",
                "--test",
                "1",
                "--landmarks",
                "4",
                "--size",
                "96",
                "80",
            ]
        )
        == 0
    )
    assert load_folder(tmp_path / "s").num_landmarks == 4
