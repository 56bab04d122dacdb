"""DICOM input: spacing from the header, MONOCHROME1, rescale, windowing, and clear errors."""

import numpy as np
import pytest
from dicom_util import PYDICOM_TEST_FILES, write_dicom

from distlmk.cli import main
from distlmk.data.dataset import DataError
from distlmk.data.dicom import read_dicom
from distlmk.data.folder import load_folder
from distlmk.data.io import read_image


def ramp(h=40, w=50):
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


def test_uint8_round_trip_and_spacing_sources(tmp_path):
    img = ramp()
    d = read_dicom(write_dicom(tmp_path / "a.dcm", img, 0.1))
    np.testing.assert_array_equal(d.pixels, img)
    assert (d.spacing_mm, d.spacing_source) == (0.1, "PixelSpacing")
    d = read_dicom(write_dicom(tmp_path / "b.dcm", img, 0.14, tag="ImagerPixelSpacing"))
    assert (d.spacing_mm, d.spacing_source) == (0.14, "ImagerPixelSpacing")
    d = read_image(write_dicom(tmp_path / "noext", img, 0.2))  # found by its DICM magic
    assert d.spacing_mm == 0.2 and d.pixels.shape == (40, 50)


def test_monochrome1_rescale_and_window(tmp_path):
    img = ramp()
    inv = read_dicom(write_dicom(tmp_path / "m1.dcm", img, photometric="MONOCHROME1")).pixels
    np.testing.assert_array_equal(inv, 255 - img)
    raw = np.array([[0, 1000, 2000, 4000]], np.uint16)
    # rescale: 2 * v - 1000 -> [-1000, 1000, 3000, 7000]; window 1000 +- 1000 -> 0, 127.6, 255, 255
    out = read_dicom(write_dicom(tmp_path / "w.dcm", raw, slope=2.0, intercept=-1000.0, window=(1000.0, 2001.0))).pixels
    np.testing.assert_array_equal(out, [[0, 128, 255, 255]])
    # no window and 16-bit values: min-max to 0..255
    out = read_dicom(write_dicom(tmp_path / "mm.dcm", raw)).pixels
    np.testing.assert_array_equal(out, [[0, 64, 128, 255]])
    ct = read_dicom(PYDICOM_TEST_FILES / "CT_small.dcm")  # a real file shipped with pydicom
    assert ct.pixels.dtype == np.uint8 and ct.pixels.shape == (128, 128) and ct.spacing_source == "PixelSpacing"


def test_refused_files_name_themselves(tmp_path):
    colour = write_dicom(tmp_path / "rgb.dcm", np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(DataError, match=r"rgb\.dcm: colour DICOM \(RGB, 3 samples"):
        read_dicom(colour)
    multi = write_dicom(tmp_path / "multi.dcm", np.zeros((2, 8, 9), np.uint8), frames=2)
    with pytest.raises(DataError, match=r"multi\.dcm: multi-frame DICOM \(2 frames\)"):
        read_dicom(multi)
    bad = tmp_path / "corrupt.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage" * 5)
    with pytest.raises(DataError, match=r"corrupt\.dcm: "):
        read_dicom(bad)
    with pytest.raises(DataError, match=r"MR_truncated\.dcm: "):
        read_dicom(PYDICOM_TEST_FILES / "MR_truncated.dcm")
    with pytest.raises(DataError, match=r"SC_rgb_small_odd\.dcm: colour DICOM"):
        read_dicom(PYDICOM_TEST_FILES / "SC_rgb_small_odd.dcm")


def dicom_folder(root, n=5, spacing=0.2, meta=None):
    (root / "images").mkdir(parents=True)
    rows = ["image,landmark,x,y"]
    for i in range(n):
        write_dicom(root / "images" / f"im{i}.dcm", np.full((40, 50), 10 * i, np.uint8), spacing)
        rows += [f"im{i}.dcm,{k},{5 + k + i},{6 + k}" for k in range(3)]
    (root / "landmarks.csv").write_text("\n".join(rows) + "\n")
    if meta:
        (root / "meta.yaml").write_text(meta)
    return root


def test_folder_of_dicoms_and_data_check(tmp_path, capsys):
    root = dicom_folder(tmp_path / "ok")
    ds = load_folder(root)
    np.testing.assert_allclose(ds.spacing_mm, 0.2)
    assert main(["data", "check", "--format", "folder", "--root", str(root)]) == 0
    assert "spacing (mm/px): [0.2] from PixelSpacing (5 images)" in capsys.readouterr().out
    agree = dicom_folder(tmp_path / "agree", meta="spacing_mm: 0.2\n")
    assert load_folder(agree).spacing_source == ["PixelSpacing"] * 5


def test_folder_dicom_errors(tmp_path, capsys):
    root = dicom_folder(tmp_path / "nospacing", spacing=None)
    assert main(["data", "check", "--format", "folder", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "im0.dcm: DICOM without PixelSpacing or ImagerPixelSpacing" in err
    # with spacing_mm in meta.yaml, files without a header spacing use it
    (root / "meta.yaml").write_text("spacing_mm: 0.3\n")
    ds = load_folder(root)
    np.testing.assert_allclose(ds.spacing_mm, 0.3)
    assert ds.spacing_source == ["meta.yaml"] * 5
    root = dicom_folder(tmp_path / "disagree", meta="spacing_mm: 0.1\n")
    with pytest.raises(DataError, match=r"im0\.dcm: header PixelSpacing 0\.2 mm disagrees with spacing_mm 0\.1.*header wins"):
        load_folder(root)
    root = dicom_folder(tmp_path / "colour")
    write_dicom(root / "images" / "im3.dcm", np.zeros((40, 50, 3), np.uint8))
    assert main(["data", "check", "--format", "folder", "--root", str(root)]) == 2
    assert "im3.dcm: colour DICOM" in capsys.readouterr().err
    root = dicom_folder(tmp_path / "corrupt")
    (root / "images" / "im1.dcm").write_bytes(b"not a dicom at all")
    assert main(["data", "check", "--format", "folder", "--root", str(root)]) == 2
    assert "im1.dcm: " in capsys.readouterr().err
