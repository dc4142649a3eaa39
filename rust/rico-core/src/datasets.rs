//! The datasets rico converts by name: each is a preset of source options, and each option a
//! [`Spec`]. Adding a dataset is adding a preset here (and a test), nothing else.

use crate::error::{Error, Result};
use crate::spec::{BandRule, Spec};

/// One source option of a dataset, e.g. `--bigearthnet-s2-dir`.
pub struct SourceOption {
    /// The flag without its leading dashes.
    pub flag: &'static str,
    pub help: &'static str,
    pub spec: Spec,
}

/// A dataset rico converts by name.
pub struct Preset {
    pub name: &'static str,
    /// One line for `rico --help`.
    pub about: &'static str,
    pub sources: Vec<SourceOption>,
}

impl Preset {
    /// The source option called `flag` (dashes or underscores).
    pub fn source(&self, flag: &str) -> Option<&SourceOption> {
        let flag = flag.replace('_', "-");
        self.sources.iter().find(|s| s.flag == flag)
    }

    /// `--a, --b or --c`, for messages.
    pub fn flags_list(&self) -> String {
        let flags: Vec<String> = self.sources.iter().map(|s| format!("--{}", s.flag)).collect();
        match flags.len() {
            0 => String::new(),
            1 => flags[0].clone(),
            n => format!("{} or {}", flags[..n - 1].join(", "), flags[n - 1]),
        }
    }
}

// Patterns are constants of this file; a failure to build one is a bug caught by the tests.
fn spec(pattern: &str, key: &str, bands: BandRule, describe: &str) -> Spec {
    Spec::new(pattern, key, bands, describe).unwrap_or_else(|e| panic!("built-in spec is invalid: {e}"))
}

fn names(names: &[&str]) -> BandRule {
    BandRule::Names(names.iter().map(|n| n.to_string()).collect())
}

/// Sentinel-2 L2A band names in BigEarthNet's order.
pub const S2_BANDS: [&str; 12] = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"];

fn bigearthnet() -> Preset {
    Preset {
        name: "bigearthnet",
        about: "BigEarthNet v2 (reBEN) and v1: Sentinel-1, Sentinel-2 and reference maps",
        sources: vec![
            SourceOption {
                flag: "bigearthnet-s1-dir",
                help: "BigEarthNet-S1 root: patch directories S1[AB]_IW_GRDH_*_<x>_<y>/ with <patch>_VH.tif and <patch>_VV.tif, at any depth",
                spec: spec(
                    r"(?:^|/)(?P<key>S1[AB]_IW_GRDH_[^/]*_\d+_\d+)/[^/]*_(?P<band>VH|VV)\.tif$",
                    "{key}",
                    BandRule::FromPath,
                    "patch directories named S1[AB]_IW_GRDH_..._<x>_<y> holding <patch>_VH.tif and <patch>_VV.tif",
                )
                .require_bands(&["VH", "VV"]),
            },
            SourceOption {
                flag: "bigearthnet-s2-dir",
                help: "BigEarthNet-S2 root: patch directories S2[AB]_MSIL2A_*_<x>_<y>/ with one <patch>_<band>.tif per band, at any depth",
                spec: spec(
                    r"(?:^|/)(?P<key>S2[AB]_MSIL2A_[^/]*_\d+_\d+)/[^/]*_(?P<band>B0[1-9]|B1[12]|B8A)\.tif$",
                    "{key}",
                    BandRule::FromPath,
                    "patch directories named S2[AB]_MSIL2A_..._<x>_<y> holding <patch>_B01.tif ... <patch>_B12.tif",
                )
                .require_bands(&S2_BANDS),
            },
            SourceOption {
                flag: "bigearthnet-reference-maps-dir",
                help: "Reference_Maps root: files S2[AB]_MSIL2A_*_<x>_<y>_reference_map.tif, stored under the band name Data",
                spec: spec(
                    r"(?:^|/)(?P<key>S2[AB]_MSIL2A_[^/]*_\d+_\d+_reference_map)\.tif$",
                    "{key}",
                    names(&["Data"]),
                    "files named S2[AB]_MSIL2A_..._<x>_<y>_reference_map.tif",
                ),
            },
        ],
    }
}

/// Every dataset rico converts by name, in the order `rico --help` lists them.
pub fn presets() -> Vec<Preset> {
    vec![bigearthnet()]
}

/// The preset called `name`, or a usage error listing the known ones.
pub fn preset(name: &str) -> Result<Preset> {
    presets().into_iter().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = presets().iter().map(|p| p.name).collect();
        Error::usage(format!("unknown dataset {name:?}; rico converts: {}", known.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_build_and_have_unique_names() {
        let all = presets();
        for (i, p) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|q| q.name != p.name), "duplicate preset {}", p.name);
            assert!(!p.sources.is_empty());
        }
    }

    #[test]
    fn bigearthnet_s2_pattern_matches_v1_and_v2_layouts() {
        let p = preset("bigearthnet").unwrap();
        let s2 = &p.source("bigearthnet_s2_dir").unwrap().spec;
        let v2 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43_B8A.tif";
        let caps = s2.pattern.captures(v2).unwrap();
        assert_eq!(&caps["key"], "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43");
        assert_eq!(&caps["band"], "B8A");
        let v1 = "S2B_MSIL2A_20180204T94160_0_1/S2B_MSIL2A_20180204T94160_0_1_B01.tif";
        assert_eq!(&s2.pattern.captures(v1).unwrap()["key"], "S2B_MSIL2A_20180204T94160_0_1");
        assert!(s2.pattern.captures("S2B_MSIL2A_20180204T94160_0_1/S2B_MSIL2A_20180204T94160_0_1_labels_metadata.json").is_none());
        assert!(s2.pattern.captures("S2B_MSIL2A_20180204T94160_0_1/S2B_MSIL2A_20180204T94160_0_1_B10.tif").is_none());
    }
}
