"""Tests of the real-data ingest: both layouts, the quirks, all-problems errors, atomic output."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from iman.data.ingest import MANIFEST_COLUMNS, DatasetError, ingest, main_ingest
from iman.data.io import (
    ReadError,
    binarise_mask,
    image_size,
    list_frames,
    read_mask,
    to_grey,
)

CACHE_KEYS = {
    "us", "ceus", "us_mask", "ceus_mask", "us_mask_orig", "ceus_mask_orig",
    "us_size", "ceus_size", "us_spacing_mm", "ceus_spacing_mm",
}  # fmt: skip
SIZE = 16


def code(k: int) -> int:
    """Grey level that encodes frame index k."""
    return 20 + 7 * k


def tint(v: int) -> tuple[float, float, float]:
    """BGR of a copper colour map at grey level v (channels differ by more than 12 from v=20)."""
    return v * 0.3, v * 0.7, float(v)


def disc(h: int, w: int, value: int = 255) -> np.ndarray:
    """A filled ellipse in the middle of an (h, w) image."""
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 4, h // 4), 0, 0, 360, value, -1)
    return mask


def write_frames(folder: Path, n: int, h: int, w: int, colour: bool = False) -> None:
    """Frame k is a uniform image of grey level code(k) (tinted copper when colour)."""
    folder.mkdir(parents=True)
    for k in range(n):
        img = np.full((h, w), code(k), np.uint8)
        if colour:
            img = np.dstack([np.full((h, w), c, np.uint8) for c in tint(code(k))])
        cv2.imwrite(str(folder / f"{k}.png"), img)


def write_video(path: Path, n: int, h: int, w: int) -> None:
    """An mp4 whose frame k is uniform at grey level code(k)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for k in range(n):
            rgb = np.full((h, w, 3), code(k), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_sheet(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def good_sheet(root: Path) -> Path:
    """Three cases: frame folder, mp4 video, side-by-side capture with crops."""
    root.mkdir(parents=True, exist_ok=True)
    write_frames(root / "c01_frames", 12, 40, 50)
    cv2.imwrite(str(root / "c01_us.png"), np.full((48, 64), 90, np.uint8))
    cv2.imwrite(str(root / "c01_us_mask.png"), disc(48, 64))
    cv2.imwrite(str(root / "c01_ceus_mask.png"), disc(40, 50))
    write_video(root / "c02.mp4", 8, 48, 64)
    cv2.imwrite(str(root / "c02_us.jpg"), np.full((32, 32, 3), 120, np.uint8))
    cv2.imwrite(str(root / "c02_us_mask.png"), disc(32, 32, 1))
    cv2.imwrite(str(root / "c02_ceus_mask.png"), disc(48, 64))
    side = root / "c03_frames"
    side.mkdir()
    for k in range(6):
        capture = np.full((40, 100), 200, np.uint8)
        capture[:, :50] = code(k)
        cv2.imwrite(str(side / f"{k}.png"), capture)
    capture = np.full((40, 100), 30, np.uint8)
    capture[:, 50:] = 200
    cv2.imwrite(str(root / "c03_capture.png"), capture)
    cv2.imwrite(str(root / "c03_us_mask.png"), disc(40, 100))
    cv2.imwrite(str(root / "c03_ceus_mask.png"), disc(40, 50))
    rows = [
        {"case_id": "c01", "patient_id": "p1", "us_image": "c01_us.png",
         "us_mask": "c01_us_mask.png", "ceus": "c01_frames", "ceus_mask": "c01_ceus_mask.png",
         "spacing_mm": "0.1", "split": "train"},
        {"case_id": "c02", "patient_id": "p1", "us_image": "c02_us.jpg",
         "us_mask": "c02_us_mask.png", "ceus": "c02.mp4", "ceus_mask": "c02_ceus_mask.png"},
        {"case_id": "c03", "patient_id": "p2", "us_image": "c03_capture.png",
         "us_mask": "c03_us_mask.png", "ceus": "c03_frames", "ceus_mask": "c03_ceus_mask.png",
         "spacing_mm": "0.1", "ceus_spacing_mm": "0.2", "us_crop": "50,0,100,40",
         "ceus_crop": "0,0,50,40", "split": "test"},
    ]  # fmt: skip
    return write_sheet(root / "cases.csv", rows)


def public_tree(root: Path) -> Path:
    """The authors' layout with their quirks: outlier frame, 578x469 labels, JPEG labels."""
    us, ceus = root / "us_small", root / "ceus_frames"
    for sub in ("train/img", "train/labelcol", "test/img", "test/labelcol"):
        (us / sub).mkdir(parents=True)
        (ceus / sub).mkdir(parents=True)
    grey_rgb = np.dstack([np.full((64, 64), 100, np.uint8)] * 3)
    cv2.imwrite(str(us / "train/img/00000.jpg"), grey_rgb)
    cv2.imwrite(str(us / "train/labelcol/00000.jpg"), disc(64, 64, 5))
    write_frames(ceus / "train/img/0", 12, 560, 460, colour=True)
    outlier = np.dstack([np.full((768, 1024), c, np.uint8) for c in tint(code(11))])
    cv2.imwrite(str(ceus / "train/img/0/11.png"), outlier)
    cv2.imwrite(str(ceus / "train/labelcol/00000.png"), disc(578, 469))
    cv2.imwrite(str(us / "test/img/00135.jpg"), grey_rgb)
    cv2.imwrite(str(us / "test/labelcol/00135.png"), disc(64, 64))
    write_frames(ceus / "test/img/135", 5, 560, 460)
    cv2.imwrite(str(ceus / "test/labelcol/00135.png"), disc(578, 469))
    return root


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sheet_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    base = tmp_path_factory.mktemp("sheet")
    out = base / "out"
    return ingest("sheet", good_sheet(base / "raw"), out, SIZE), out


@pytest.fixture(scope="module")
def public_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    base = tmp_path_factory.mktemp("public")
    out = base / "out"
    return ingest("iman_public", public_tree(base / "datasets"), out, SIZE), out


# --------------------------------------------------------------------------- readers


def test_frames_sort_numerically(tmp_path: Path) -> None:
    for name in ["10.png", "9.png", "1.png", "100.png", "2.png", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["1.png", "2.png", "9.png", "10.png",
                                                       "100.png"]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected", "note"),
    [
        (np.array([[0, 255], [255, 0]], np.uint8), [[0, 1], [1, 0]], None),
        (np.array([[0, 1], [1, 0]], np.uint8), [[0, 1], [1, 0]], None),
        (np.array([[0, 3], [250, 129]], np.uint8), [[0, 0], [1, 1]], ">= 128"),
        (np.array([[0, 1], [5, 3]], np.uint8), [[0, 0], [1, 1]], ">= 2.5"),
        (np.array([[0, 7], [7, 0]], np.uint8), [[0, 1], [1, 0]], "{0, 7}"),
    ],
)
def test_binarise_mask(raw: np.ndarray, expected: list[list[int]], note: str | None) -> None:
    mask, got = binarise_mask(raw)
    assert mask.dtype == np.uint8
    assert mask.tolist() == expected
    assert got is None if note is None else note in got


def test_colour_mask_with_alpha_reads_as_foreground(tmp_path: Path) -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[2:5, 3:7, 2] = 255
    cv2.imwrite(str(tmp_path / "m.png"), rgba)
    mask, note = binarise_mask(read_mask(tmp_path / "m.png"))
    assert note is None and mask.sum() == 12 and mask[2:5, 3:7].all()


def test_to_grey_keeps_grey_content_and_converts_colour() -> None:
    grey = np.dstack([np.arange(4096).reshape(64, 64).astype(np.uint8)] * 3)
    grey[0, 0] = (0, 0, 40)
    out, colour = to_grey(grey)
    assert not colour and np.array_equal(out[1:], grey[1:, :, 0])
    copper = np.zeros((8, 8, 3), np.uint8)
    copper[..., 2] = 200
    out, colour = to_grey(copper)
    assert colour and out[0, 0] == cv2.cvtColor(copper, cv2.COLOR_BGR2GRAY)[0, 0]


def test_image_size_reads_headers(tmp_path: Path) -> None:
    img = np.zeros((37, 53, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.jpg"), img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    cv2.imwrite(str(tmp_path / "c.bmp"), img)
    assert {image_size(tmp_path / n) for n in ("a.png", "b.jpg", "c.bmp")} == {(37, 53)}


@pytest.mark.parametrize("suffix", [".bmp", ".tif"])
def test_image_size_of_bmp_and_tiff_is_height_width(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"frame{suffix}"
    assert cv2.imwrite(str(path), np.zeros((21, 34), np.uint8))
    assert image_size(path) == (21, 34)


def test_image_size_reports_truncated_png_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    assert cv2.imwrite(str(path), np.zeros((21, 34), np.uint8))
    path.write_bytes(path.read_bytes()[:20])  # signature + half of the IHDR chunk
    with pytest.raises(ReadError, match="corrupt or truncated PNG header"):
        image_size(path)
    (tmp_path / "gif.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(ReadError, match=r"not a PNG file \(bad signature\)"):
        image_size(tmp_path / "gif.png")
    with pytest.raises(ReadError, match="cannot open"):
        image_size(tmp_path / "missing.png")


# --------------------------------------------------------------------------- sheet layout


def test_sheet_manifest_rows_and_columns(sheet_result: tuple[pd.DataFrame, Path]) -> None:
    manifest, out = sheet_result
    on_disk = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert list(on_disk.columns) == MANIFEST_COLUMNS == list(manifest.columns)
    assert on_disk["case_id"].tolist() == ["c01", "c02", "c03"]
    assert on_disk["patient_id"].tolist() == ["p1", "p1", "p2"]
    assert on_disk["source_split"].tolist() == ["train", "", "test"]
    assert on_disk["n_frames"].tolist() == [12, 8, 6]
    assert on_disk[["us_h", "us_w"]].values.tolist() == [[48, 64], [32, 32], [40, 50]]
    assert on_disk[["ceus_h", "ceus_w"]].values.tolist() == [[40, 50], [48, 64], [40, 50]]
    assert on_disk["us_spacing_mm"].tolist() == [0.1, 1.0, 0.1]
    assert on_disk["ceus_spacing_mm"].tolist() == [0.1, 1.0, 0.2]
    assert on_disk["cache"].tolist() == [f"cache/c0{i}.npz" for i in (1, 2, 3)]
    assert on_disk["warnings"].tolist()[0] == ""
    assert on_disk["warnings"].tolist()[1] == "spacing_mm missing, 1.0 mm assumed"
    assert sorted(p.name for p in out.iterdir()) == ["cache", "manifest.csv"]


def test_sheet_cache_content(sheet_result: tuple[pd.DataFrame, Path]) -> None:
    _, out = sheet_result
    for case, n_frames, orig in [("c01", 12, (48, 64)), ("c02", 8, (32, 32)), ("c03", 6, (40, 50))]:
        z = np.load(out / "cache" / f"{case}.npz")
        assert set(z.files) == CACHE_KEYS
        assert z["us"].dtype == np.uint8 and z["us"].shape == (SIZE, SIZE)
        assert z["ceus"].dtype == np.uint8 and z["ceus"].shape == (n_frames, SIZE, SIZE)
        assert z["us_mask_orig"].shape == orig and z["us_mask_orig"].dtype == np.uint8
        for key in ("us_mask", "ceus_mask", "us_mask_orig", "ceus_mask_orig"):
            assert set(np.unique(z[key])) == {0, 1}
        assert z["us_size"].dtype == np.int64 and tuple(z["us_size"]) == orig
        assert z["us_spacing_mm"].dtype == np.float64 and z["us_spacing_mm"].shape == ()
        levels = z["ceus"].reshape(n_frames, -1).mean(axis=1)
        assert np.allclose(levels, [code(k) for k in range(n_frames)], atol=3)


def test_sheet_crops_side_by_side_capture(sheet_result: tuple[pd.DataFrame, Path]) -> None:
    _, out = sheet_result
    z = np.load(out / "cache" / "c03.npz")
    assert np.all(z["us"] == 200)
    assert np.array_equal(z["ceus"][:, 0, 0], [code(k) for k in range(6)])
    assert z["us_mask_orig"].shape == (40, 50) and z["ceus_mask_orig"].shape == (40, 50)
    assert tuple(z["ceus_size"]) == (40, 50) and float(z["ceus_spacing_mm"]) == 0.2


def test_colour_us_channels_and_vanishing_lesion(tmp_path: Path) -> None:
    sheet = good_sheet(tmp_path / "raw")
    cv2.imwrite(str(tmp_path / "raw" / "c01_us.png"), np.full((48, 64, 3), (10, 50, 200), np.uint8))
    dot = np.zeros((32, 32), np.uint8)
    dot[5, 5] = 255
    cv2.imwrite(str(tmp_path / "raw" / "c02_us_mask.png"), dot)
    grey = ingest("sheet", sheet, tmp_path / "grey", SIZE)
    assert "us_image: colour content, converted with luminance weights" in grey["warnings"][0]
    assert "us_mask: lesion vanishes at the working size 16" in grey["warnings"][1]
    luma = cv2.cvtColor(np.array([[(10, 50, 200)]], np.uint8), cv2.COLOR_BGR2GRAY)[0, 0]
    assert np.all(np.load(tmp_path / "grey" / "cache" / "c01.npz")["us"] == luma)
    ingest("sheet", sheet, tmp_path / "rgb", SIZE, us_channels=3)
    us = np.load(tmp_path / "rgb" / "cache" / "c01.npz")["us"]
    assert us.shape == (3, SIZE, SIZE) and us[:, 3, 3].tolist() == [200, 50, 10]
    assert np.all(np.load(tmp_path / "rgb" / "cache" / "c02.npz")["us"] == 120)


def test_cli_summary_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = good_sheet(tmp_path / "raw")
    argv = ["--layout", "sheet", "--root", str(sheet), "--out", str(tmp_path / "o")]
    assert main_ingest([*argv, "--size", "8"]) == 0
    printed = capsys.readouterr().out.strip()
    assert "ingested 3 cases" in printed and "1 warning(s)" in printed and "\n" not in printed
    assert main_ingest([*argv, "--min-frames", "10"]) == 2
    err = capsys.readouterr().err
    assert "c02: c02.mp4: 8 frame(s)" in err and "c03: c03_frames: 6 frame(s)" in err


# --------------------------------------------------------------------------- iman_public layout


def test_public_manifest_and_warnings(public_result: tuple[pd.DataFrame, Path]) -> None:
    manifest, _ = public_result
    assert manifest["case_id"].tolist() == ["00000", "00135"]
    assert manifest["patient_id"].tolist() == manifest["case_id"].tolist()
    assert manifest["source_split"].tolist() == ["train", "test"]
    assert manifest["n_frames"].tolist() == [12, 5]
    assert manifest[["ceus_h", "ceus_w", "us_h", "us_w"]].values.tolist() == [
        [560, 460, 64, 64]] * 2  # fmt: skip
    first = manifest["warnings"][0].split(" | ")
    assert "iman_public layout has no patient information: patient_id = case_id" in first
    assert any(w.startswith("us_mask: values 0..") and "half the maximum" in w for w in first)
    assert ("ceus_mask: size 578x469 resized (nearest) to the image size 560x460 "
            "(aspect ratios differ by 1.2%)") in first  # fmt: skip
    assert "ceus: colour content in 12/12 frames, converted with luminance weights" in first
    assert ("ceus: 1 frame(s) of another size resized to the majority size 560x460: "
            "11.png (768x1024)") in first  # fmt: skip
    assert not any(w.startswith("us_image: colour") for w in first)
    second = manifest["warnings"][1]
    assert "colour" not in second and "frame(s) of another size" not in second


def test_public_cache_frames_and_masks(
    public_result: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    _, out = public_result
    z = np.load(out / "cache" / "00000.npz")
    copper = [cv2.cvtColor(np.array([[tint(code(k))]], np.uint8), cv2.COLOR_BGR2GRAY)[0, 0]
              for k in range(12)]  # fmt: skip
    assert z["ceus"][:, 5, 5].tolist() == copper
    assert z["ceus_mask_orig"].shape == (560, 460)
    assert z["us_mask_orig"].shape == (64, 64) and z["us_mask_orig"].sum() > 0
    expected = cv2.resize(disc(64, 64, 1).astype(np.float32), (SIZE, SIZE),
                          interpolation=cv2.INTER_AREA) >= 0.5  # fmt: skip
    assert np.array_equal(z["us_mask"], expected.astype(np.uint8))
    assert tuple(z["ceus_size"]) == (560, 460) and float(z["us_spacing_mm"]) == 1.0


# --------------------------------------------------------------------------- errors


def broken_sheet(root: Path) -> Path:
    """A sheet where every case but one carries a different problem."""
    root.mkdir(parents=True)
    write_frames(root / "frames", 6, 40, 50)
    cv2.imwrite(str(root / "us.png"), np.full((32, 32), 80, np.uint8))
    cv2.imwrite(str(root / "us_mask.png"), disc(32, 32))
    cv2.imwrite(str(root / "ceus_mask.png"), disc(40, 50))
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    cv2.imwrite(str(root / "empty_mask.png"), np.zeros((40, 50), np.uint8))
    cv2.imwrite(str(root / "square_mask.png"), disc(50, 50))
    write_video(root / "short.mp4", 3, 40, 50)
    write_frames(root / "bad_frames", 4, 40, 50)
    (root / "bad_frames" / "2.png").write_bytes(b"GIF89a not a png")
    ok = {"patient_id": "p", "us_image": "us.png", "us_mask": "us_mask.png", "ceus": "frames",
          "ceus_mask": "ceus_mask.png", "spacing_mm": "0.1"}  # fmt: skip
    rows = [
        {**ok, "case_id": "ok1"},
        {**ok, "case_id": "b01", "us_image": "missing_us.png"},
        {**ok, "case_id": "b02", "us_mask": "corrupt.png"},
        {**ok, "case_id": "b03", "ceus_mask": "empty_mask.png"},
        {**ok, "case_id": "b04", "ceus": "short.mp4"},
        {**ok, "case_id": "ok1"},
        {**ok, "case_id": "b06", "patient_id": ""},
        {**ok, "case_id": "b07", "ceus_mask": "square_mask.png"},
        {**ok, "case_id": "b08", "spacing_mm": "-1"},
        {**ok, "case_id": "b09", "spacing_mm": "abc"},
        {**ok, "case_id": "b10", "ceus": "bad_frames"},
        {**ok, "case_id": "b11", "ceus_crop": "0,0,500,40"},
    ]
    return write_sheet(root / "cases.csv", rows)


EXPECTED_PROBLEMS = [
    ("b01", "missing_us.png", "missing file"),
    ("b02", "corrupt.png", "unreadable or corrupt mask image"),
    ("b03", "empty_mask.png", "empty mask"),
    ("b04", "short.mp4", "3 frame(s), fewer than min_frames = 5"),
    ("ok1 (row 7)", "cases.csv", "duplicate case_id (first on row 2)"),
    ("b06 (row 8)", "cases.csv", "missing value in required column patient_id"),
    ("b07", "square_mask.png", "aspect ratios differ by 20.0% (> 2%)"),
    ("b08 (row 10)", "cases.csv", "column spacing_mm: -1.0 must be > 0"),
    ("b09 (row 11)", "cases.csv", "column spacing_mm: 'abc' is not a number"),
    ("b10", "bad_frames/2.png", "not a PNG file (bad signature)"),
    ("b11", "frames", "ceus_crop 0,0,500,40 lies outside the 40x50 image"),
]


def test_broken_sheet_lists_every_problem_and_keeps_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest("sheet", good_sheet(tmp_path / "good"), out, SIZE)
    before = snapshot(out)
    with pytest.raises(DatasetError) as info:
        ingest("sheet", broken_sheet(tmp_path / "bad"), out, SIZE, min_frames=5)
    found = {(p.case, p.file, p.message) for p in info.value.problems}
    for case, file, phrase in EXPECTED_PROBLEMS:
        assert any(c == case and f == file and phrase in m for c, f, m in found), (case, found)
        assert f"{case}: {file}: " in str(info.value)
    assert len(info.value.problems) == len(EXPECTED_PROBLEMS)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out"]


def test_failure_while_writing_leaves_nothing(tmp_path: Path) -> None:
    sheet = good_sheet(tmp_path / "raw")
    frame = tmp_path / "raw" / "c03_frames" / "4.png"
    frame.write_bytes(frame.read_bytes()[:60])
    with pytest.raises(DatasetError) as info:
        ingest("sheet", sheet, tmp_path / "out", SIZE)
    assert [str(p) for p in info.value.problems] == [
        "c03: c03_frames/4.png: unreadable or corrupt image"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_sheet_header_problems(tmp_path: Path) -> None:
    rows = [{"case_id": "a", "patient": "p", "us_image": "u.png", "us_mask": "m.png",
             "ceus": "v.mp4", "ceus_mask": "c.png", "us_crop": "1,2,3"}]  # fmt: skip
    sheet = write_sheet(tmp_path / "cases.csv", rows)
    sheet.write_text(sheet.read_text() + "\nb,p,u.png,m.png,v.mp4,c.png,,extra\n")
    with pytest.raises(DatasetError) as info:
        ingest("sheet", sheet, tmp_path / "out", SIZE)
    assert [str(p) for p in info.value.problems] == [
        "sheet: cases.csv: unknown column 'patient' (valid: case_id, patient_id, us_image, "
        "us_mask, ceus, ceus_mask, spacing_mm, ceus_spacing_mm, us_crop, ceus_crop, split)",
        "sheet: cases.csv: required column 'patient_id' missing",
        "row 4: cases.csv: 8 cells, header has 7",
    ]
    assert not (tmp_path / "out").exists()


def test_sheet_row_schema_problems(tmp_path: Path) -> None:
    rows = [{"case_id": "a b", "patient_id": "p", "us_image": "u.png", "us_mask": "m.png",
             "ceus": "v.mp4", "ceus_mask": "c.png", "us_crop": "1,2,3",
             "split": "dev"}]  # fmt: skip
    with pytest.raises(DatasetError) as info:
        ingest("sheet", write_sheet(tmp_path / "cases.csv", rows), tmp_path / "out", SIZE)
    messages = [p.message for p in info.value.problems]
    assert messages == [
        "column case_id: 'a b' is not letters, digits, '.', '_' or '-', starting with a letter "
        "or digit",
        "column split: 'dev' is not one of train, val, test",
        "column us_crop: '1,2,3' is not four integers x0,y0,x1,y1",
    ]


def test_public_missing_counterparts(tmp_path: Path) -> None:
    root = public_tree(tmp_path / "datasets")
    (root / "ceus_frames/test/labelcol/00135.png").unlink()
    cv2.imwrite(str(root / "us_small/test/img/00140.jpg"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError) as info:
        ingest("iman_public", root, tmp_path / "out", SIZE)
    assert sorted(map(str, info.value.problems)) == [
        "00135: ceus_frames/test/labelcol/00135.png: missing file",
        "00140: ceus_frames/test/img/140: missing CEUS video or frame folder",
        "00140: ceus_frames/test/labelcol/00140.png: missing file",
        "00140: us_small/test/labelcol/00140.png: missing file",
    ]
