"""The Sentinel band lists, written once. Standard library only."""

from __future__ import annotations

#: Sentinel-2 L2A's twelve bands in band-number order (B8A after B08), as BigEarthNet,
#: Major-TOM and Hydro hold them and the tests and benches stack them, with each band's side in
#: pixels in a BigEarthNet patch (10 m: 120, 20 m: 60, 60 m: 20).
S2_SIDES: dict[str, int] = {
    "B01": 20, "B02": 120, "B03": 120, "B04": 120, "B05": 60, "B06": 60,
    "B07": 60, "B08": 120, "B8A": 60, "B09": 20, "B11": 60, "B12": 60,
}  # fmt: skip
S2_BANDS: list[str] = list(S2_SIDES)
#: Sentinel-1's two polarisations, as BigEarthNet stores them.
S1_BANDS: list[str] = ["VH", "VV"]
