"""Every named dataset on the real samples: the contract's keys, band names, dtypes and shapes,
every record byte-identical to ``safetensors.numpy.save`` of rasterio's reads.

(BigEarthNet has its own module; SpectralEarth and Major-TOM's Sentinel-1 part have no real
sample and are tested on trees written with rasterio in ``test_datasets_generated.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rico
from support.bands import S2_BANDS
from support.cli import run
from support.expected_records import bands_record, file_record, layout, numbered_record
from support.lmdb_records import read_lmdb

EUROSAT_BANDS = [
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B09",
    "B10",
    "B11",
    "B12",
    "B08A",
]
SSL4EO_L1C = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
SSL4EO_L2A = [b for b in SSL4EO_L1C if b != "B10"]
HSN = (
    "ENMAP01-____L2A-DT0000004950_20221103T162438Z_001_V010110_20221118T145147Z-Y01460273_X03110438"
)
SSL_ACQ_S2 = "0000200/20200604T054639_20200604T054831_T43RCP"
SSL_ACQ_S1 = "0000200/S1A_IW_GRDH_1SDV_20200607T010800_20200607T010825_032904_03CFBA_D457"
MT_PRODUCT = "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"


def expected(name: str, s: Path) -> dict[bytes, bytes]:
    """The records the contract demands for dataset ``name`` on the samples under ``s``."""
    if name == "hydro":
        return {
            f"patch_{n}".encode(): file_record(s / "Hydro" / f"patch_{n}.tif", S2_BANDS)
            for n in (0, 1, 10, 100)
        }
    if name == "uc-merced":
        root = s / "UCMerced_LandUse" / "Images"
        return {
            b"airplane00": file_record(
                root / "airplane" / "airplane00.tif", ["Red", "Green", "Blue"]
            ),
            b"forest10": file_record(root / "forest" / "forest10.tif", ["Red", "Green", "Blue"]),
        }
    if name == "eurosat-multi-spectral":
        root = s / "EuroSAT_MS"
        return {
            b"AnnualCrop_1": file_record(root / "AnnualCrop" / "AnnualCrop_1.tif", EUROSAT_BANDS),
            b"Pasture_300": file_record(root / "Pasture" / "Pasture_300.tif", EUROSAT_BANDS),
        }
    if name == "hyspecnet-11k":
        return {
            HSN.encode(): numbered_record(s / "HySpecNet-11k" / HSN / f"{HSN}-SPECTRAL_IMAGE.TIF")
        }
    if name == "ssl4eo-s12":
        root = s / "SSL4EO-S12"
        acq = SSL_ACQ_S2.replace("/", "_")
        return {
            f"s1_{SSL_ACQ_S1.replace('/', '_')}".encode(): bands_record(
                {b: root / "s1" / SSL_ACQ_S1 / f"{b}.tif" for b in ("VH", "VV")}
            ),
            f"s2a_{acq}".encode(): bands_record(
                {b: root / "s2a" / SSL_ACQ_S2 / f"{b}.tif" for b in SSL4EO_L2A}
            ),
            f"s2c_{acq}".encode(): bands_record(
                {b: root / "s2c" / SSL_ACQ_S2 / f"{b}.tif" for b in SSL4EO_L1C}
            ),
        }
    if name == "major-tom-core":
        product = s / "Major-TOM-Core" / "S2L2A" / "0U" / "0U_199R" / MT_PRODUCT
        return {
            f"0U_199R_{MT_PRODUCT}".encode(): bands_record(
                {b: product / f"{b}.tif" for b in S2_BANDS}
            )
        }
    raise AssertionError(name)


def sources(name: str, s: Path) -> dict[str, Path]:
    return {
        "hydro": {"dataset_dir": s / "Hydro"},
        "uc-merced": {"dataset_dir": s / "UCMerced_LandUse"},
        "eurosat-multi-spectral": {"dataset_dir": s / "EuroSAT_MS"},
        "hyspecnet-11k": {"dataset_dir": s / "HySpecNet-11k"},
        "ssl4eo-s12": {
            "s1_dir": s / "SSL4EO-S12" / "s1",
            "s2_l2a_dir": s / "SSL4EO-S12" / "s2a",
            "s2_l1c_dir": s / "SSL4EO-S12" / "s2c",
        },
        "major-tom-core": {"s2_dir": s / "Major-TOM-Core" / "S2L2A"},
    }[name]


DATASETS = [
    "hydro",
    "uc-merced",
    "eurosat-multi-spectral",
    "hyspecnet-11k",
    "ssl4eo-s12",
    "major-tom-core",
]


@pytest.mark.parametrize("name", DATASETS)
def test_real_samples_are_byte_identical_to_rasterio(name, samples, tmp_path):
    summary = rico.convert(name, tmp_path / "db", threads=2, **sources(name, samples))
    got = read_lmdb(tmp_path / "db")
    want = expected(name, samples)
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key] == value, key
    assert summary.records == len(want)
    assert summary.labels_table is None and not (tmp_path / "db" / "labels.csv").exists()


# The contract's layout of each record, spelled out: (band names in order, dtype, shape of each band).
def test_hydro_layout(samples, tmp_path):
    rico.convert("hydro", tmp_path / "db", dataset_dir=samples / "Hydro")
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == [b"patch_0", b"patch_1", b"patch_10", b"patch_100"]
    for value in got.values():
        assert layout(value) == {b: ("uint16", (64, 64)) for b in S2_BANDS}  # cropped samples


def test_uc_merced_layout(samples, tmp_path):
    rico.convert("uc-merced", tmp_path / "db", dataset_dir=samples / "UCMerced_LandUse")
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == [b"airplane00", b"forest10"]
    for value in got.values():
        assert layout(value) == {b: ("uint8", (256, 256)) for b in ("Red", "Green", "Blue")}


def test_uc_merced_prints_no_georeferencing_warning(rico_bin, samples, tmp_path):
    res = run(
        rico_bin, "uc-merced", "--dataset-dir", samples / "UCMerced_LandUse",
        "--target-dir", tmp_path / "db",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("rico: wrote 2 records") and res.stderr.count("\n") == 1
    assert "warn" not in res.stderr.lower() and "georef" not in res.stderr.lower()


def test_eurosat_layout_band_13_is_b08a(samples, tmp_path):
    rico.convert("eurosat-multi-spectral", tmp_path / "db", dataset_dir=samples / "EuroSAT_MS")
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == [b"AnnualCrop_1", b"Pasture_300"]
    for value in got.values():
        assert layout(value) == {b: ("uint16", (64, 64)) for b in EUROSAT_BANDS}
    from safetensors.numpy import load
    from support.expected_records import rasterio_bands

    bands = rasterio_bands(samples / "EuroSAT_MS" / "AnnualCrop" / "AnnualCrop_1.tif")
    assert (load(got[b"AnnualCrop_1"])["B08A"] == bands[12]).all()
    assert (load(got[b"AnnualCrop_1"])["B10"] == bands[9]).all()


def test_hyspecnet_layout_skips_quality_layers_and_thumbnail(samples, tmp_path):
    summary = rico.convert("hyspecnet-11k", tmp_path / "db", dataset_dir=samples / "HySpecNet-11k")
    got = read_lmdb(tmp_path / "db")
    assert list(got) == [HSN.encode()]
    assert layout(got[HSN.encode()]) == {f"B{i}": ("int16", (32, 32)) for i in range(1, 225)}
    assert summary.files == 1  # the QL_*.TIF files and the thumbnail are not read


def test_ssl4eo_layout_and_keys_carry_the_root(samples, tmp_path):
    summary = rico.convert("ssl4eo-s12", tmp_path / "db", **sources("ssl4eo-s12", samples))
    got = read_lmdb(tmp_path / "db")
    acq = SSL_ACQ_S2.replace("/", "_")
    assert sorted(got) == sorted(
        [
            f"s1_{SSL_ACQ_S1.replace('/', '_')}".encode(),
            f"s2a_{acq}".encode(),
            f"s2c_{acq}".encode(),
        ]
    )
    assert b"s2c_0000200_20200604T054639_20200604T054831_T43RCP" in got  # the contract's example
    side = {"B1": 44, "B9": 44, "B10": 44, "B2": 264, "B3": 264, "B4": 264, "B8": 264}
    assert layout(got[f"s2c_{acq}".encode()]) == {
        b: ("uint16", (side.get(b, 132),) * 2) for b in SSL4EO_L1C
    }
    assert layout(got[f"s2a_{acq}".encode()]) == {
        b: ("uint16", (side.get(b, 132),) * 2) for b in SSL4EO_L2A
    }
    s1 = [v for k, v in got.items() if k.startswith(b"s1_")][0]
    assert layout(s1) == {"VH": ("float32", (264, 264)), "VV": ("float32", (264, 264))}
    assert summary.files == 2 + 12 + 13  # metadata.json is not image data


def test_major_tom_layout_and_key(samples, tmp_path):
    summary = rico.convert(
        "major-tom-core", tmp_path / "db", s2_dir=samples / "Major-TOM-Core" / "S2L2A"
    )
    got = read_lmdb(tmp_path / "db")
    assert list(got) == [f"0U_199R_{MT_PRODUCT}".encode()]
    side = {"B01": 44, "B09": 44, "B02": 264, "B03": 264, "B04": 264, "B08": 264}  # cropped
    assert layout(got[f"0U_199R_{MT_PRODUCT}".encode()]) == {
        b: ("uint16", (side.get(b, 132),) * 2) for b in S2_BANDS
    }
    assert summary.files == 12  # cloud_mask.tif and thumbnail.png are not converted


# --- several source directories: all checked before anything is written ------------------------


@pytest.mark.parametrize(
    "name, first, second",
    [
        ("ssl4eo-s12", ("s2_l1c_dir", "SSL4EO-S12/s2c"), "s2_l2a_dir"),
        ("major-tom-core", ("s2_dir", "Major-TOM-Core/S2L2A"), "s1_dir"),
        ("bigearthnet", ("bigearthnet_s2_dir", "BigEarthNet/BigEarthNet-S2"), "bigearthnet_s1_dir"),
    ],
)
def test_a_missing_second_source_dir_writes_nothing(name, first, second, samples, tmp_path):
    missing = tmp_path / "not-there"
    with pytest.raises(rico.UsageError, match=f"--{second.replace('_', '-')}") as err:
        rico.convert(name, tmp_path / "db", **{first[0]: samples / first[1], second: missing})
    assert str(missing) in str(err.value)
    assert not (tmp_path / "db" / "data.mdb").exists()
    # Sources are walked in the order of their paths: the empty one goes first, then last (after
    # the other source's records were written).
    given = tmp_path / "m-first"
    given.symlink_to(samples / first[1], target_is_directory=True)
    for empty in (tmp_path / "a-empty", tmp_path / "z-empty"):
        empty.mkdir()
        with pytest.raises(rico.UsageError, match="no patch found"):
            rico.convert(name, tmp_path / "db", **{first[0]: given, second: empty})
        assert not (tmp_path / "db").exists()


def test_ssl4eo_sources_go_into_one_database_in_source_order(samples, tmp_path):
    rico.convert(
        "ssl4eo-s12",
        tmp_path / "db",
        s2_l1c_dir=samples / "SSL4EO-S12" / "s2c",
        s2_l2a_dir=samples / "SSL4EO-S12" / "s2a",
    )
    assert len(read_lmdb(tmp_path / "db")) == 2


# --- the binary ---------------------------------------------------------------------------------


ALL = [
    "bigearthnet",
    "hyspecnet-11k",
    "uc-merced",
    "eurosat-multi-spectral",
    "ssl4eo-s12",
    "major-tom-core",
    "hydro",
    "spectral-earth-enmap",
    "mlrsnet",
    "image-folder",
    "bands",
]


def test_help_lists_every_dataset_with_one_line(rico_bin):
    top = run(rico_bin, "--help")
    assert top.returncode == 0
    lines = top.stdout.splitlines()
    for name in ALL:
        entry = [line for line in lines if line.startswith(f"  {name} ")]
        assert len(entry) == 1 and len(entry[0].split(None, 1)[1]) > 10, (name, top.stdout)
    assert sorted(rico.datasets()) == sorted(ALL)


@pytest.mark.parametrize(
    "name, flags",
    [
        ("hyspecnet-11k", ["--dataset-dir"]),
        ("ssl4eo-s12", ["--s1-dir", "--s2-l1c-dir", "--s2-l2a-dir"]),
        ("major-tom-core", ["--s1-dir", "--s2-dir"]),
        ("image-folder", ["--dataset-dir", "--band-names", "--key-parents"]),
        ("bands", ["--dataset-dir", "--pattern"]),
    ],
)
def test_subcommand_help_shows_the_contract_flags(rico_bin, name, flags):
    res = run(rico_bin, name, "--help")
    assert res.returncode == 0
    for flag in [*flags, "--target-dir", "--threads"]:
        assert flag in res.stdout, (name, flag)


def test_cli_converts_ssl4eo_from_three_dirs(rico_bin, samples, tmp_path):
    root = samples / "SSL4EO-S12"
    dirs = ["--s1-dir", root / "s1", "--s2-l1c-dir", root / "s2c", "--s2-l2a-dir", root / "s2a"]
    res = run(rico_bin, "ssl4eo-s12", *dirs, "--target-dir", tmp_path / "db", "--threads", 2)
    assert res.returncode == 0, res.stderr
    assert read_lmdb(tmp_path / "db") == expected("ssl4eo-s12", samples)
    missing = run(
        rico_bin, "ssl4eo-s12", "--s1-dir", root / "s1", "--s2-l2a-dir", tmp_path / "nope",
        "--target-dir", tmp_path / "db2",
    )  # fmt: skip
    assert missing.returncode == 2 and "--s2-l2a-dir" in missing.stderr
    assert not (tmp_path / "db2" / "data.mdb").exists()
