//! The datasets rico converts by name: each is a preset of source options (directories) and
//! value options (`--pattern`, ...), and each source option a [`Spec`]. Adding a dataset is
//! adding a preset here (and a test), nothing else.
//!
//! The named datasets are presets of the two generic mechanisms: whole files whose bands are
//! named by index ([`BandRule::Names`], [`BandRule::Numbered`]; `image-folder`) and one file per
//! band grouped by key ([`BandRule::FromPath`]; `bands`).

use std::collections::BTreeMap;

use regex::Regex;

use crate::base::error::{Error, Result};
use crate::base::labels::LabelRule;
use crate::write::spec::{BandRule, Spec};

/// One source option of a dataset, e.g. `--bigearthnet-s2-dir`.
pub struct SourceOption {
    /// The flag without its leading dashes; every source flag ends in `-dir`.
    pub flag: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// Builds the spec of this source from the preset's value options.
    build: fn(&Params) -> Result<Spec>,
}

impl SourceOption {
    /// The spec of this source for these value options.
    pub fn spec(&self, params: &Params) -> Result<Spec> {
        (self.build)(params)
    }
}

/// A value option of a dataset (not a directory), e.g. `--pattern REGEX` of `bands`.
pub struct ParamOption {
    /// The flag without its leading dashes; never ends in `-dir` (Python tells the two kinds
    /// of keyword argument apart by that).
    pub flag: &'static str,
    /// The placeholder of the value in `--help` (`REGEX`, `N`, ...).
    pub value_name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// The dataset cannot be converted without it.
    pub required: bool,
}

/// The values given for a preset's value options, by flag (dashes, no leading dashes).
#[derive(Clone, Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// The value given for `flag`, if any.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.values.get(flag).map(String::as_str)
    }
}

/// A dataset rico converts by name.
pub struct Preset {
    /// The dataset's name, also its subcommand (`bigearthnet`, `bands`, ...).
    pub name: &'static str,
    /// One line for `rico --help`.
    pub about: &'static str,
    /// Its source options (directories), one spec each.
    pub sources: Vec<SourceOption>,
    /// Its value options (not directories).
    pub params: Vec<ParamOption>,
}

impl Preset {
    /// The source option called `flag` (dashes or underscores).
    pub fn source(&self, flag: &str) -> Option<&SourceOption> {
        let flag = flag.replace('_', "-");
        self.sources.iter().find(|s| s.flag == flag)
    }

    /// The value option called `flag` (dashes or underscores).
    pub fn param(&self, flag: &str) -> Option<&ParamOption> {
        let flag = flag.replace('_', "-");
        self.params.iter().find(|p| p.flag == flag)
    }

    /// `--a, --b or --c`, for messages.
    pub fn flags_list(&self) -> String {
        or_list(self.sources.iter().map(|s| s.flag))
    }

    /// Checks `given` (flag, value) against the value options: each must be known, the
    /// required ones present.
    pub fn params_from(&self, given: &[(String, String)]) -> Result<Params> {
        let mut params = Params::default();
        for (flag, value) in given {
            let option = self.param(flag).ok_or_else(|| {
                let known = if self.params.is_empty() {
                    "it takes none".to_string()
                } else {
                    format!(
                        "its value options are {}",
                        or_list(self.params.iter().map(|p| p.flag))
                    )
                };
                Error::usage(format!(
                    "{} has no value option {flag:?}; {known}",
                    self.name
                ))
            })?;
            params.values.insert(option.flag.to_string(), value.clone());
        }
        for option in self.params.iter().filter(|p| p.required) {
            if params.get(option.flag).is_none() {
                return Err(Error::usage(format!(
                    "{} needs --{} {}",
                    self.name, option.flag, option.value_name
                ))
                .hint(option.help));
            }
        }
        Ok(params)
    }
}

fn or_list<'a>(flags: impl Iterator<Item = &'a str>) -> String {
    let flags: Vec<String> = flags.map(|f| format!("--{f}")).collect();
    match flags.len() {
        0 => String::new(),
        1 => flags[0].clone(),
        n => format!("{} or {}", flags[..n - 1].join(", "), flags[n - 1]),
    }
}

fn names(names: &[&str]) -> BandRule {
    BandRule::Names(names.iter().map(|n| n.to_string()).collect())
}

fn numbered() -> BandRule {
    BandRule::Numbered("B".to_string())
}

/// Sentinel-2 L2A band names in BigEarthNet's order.
pub const S2_BANDS: [&str; 12] = [
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
];

/// EuroSAT's 13 bands in file order (band 13 is B08A).
pub const EUROSAT_BANDS: [&str; 13] = [
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B08A",
];

/// SSL4EO-S12's Sentinel-2 L1C band files (L2A has the same without B10).
pub const SSL4EO_L1C_BANDS: [&str; 13] = [
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
];

/// The extensions the generic image-folder mode converts (any case).
pub const IMAGE_EXTENSIONS: &str = "tif|tiff|jpg|jpeg|png";

/// The source option of single-directory datasets.
const DATASET_DIR: &str = "dataset-dir";

fn bigearthnet() -> Preset {
    Preset {
        name: "bigearthnet",
        about: "BigEarthNet v2 (reBEN) and v1: Sentinel-1, Sentinel-2 and reference maps",
        sources: vec![
            SourceOption {
                flag: "bigearthnet-s1-dir",
                help: "BigEarthNet-S1 root: patch directories S1[AB]_IW_GRDH_*_<x>_<y>/ with <patch>_VH.tif and <patch>_VV.tif, at any depth",
                build: |_| {
                    Ok(Spec::new(
                        r"(?:^|/)(?P<key>S1[AB]_IW_GRDH_[^/]*_\d+_\d+)/[^/]*_(?P<band>VH|VV)\.tif$",
                        "{key}",
                        BandRule::FromPath,
                        "patch directories named S1[AB]_IW_GRDH_..._<x>_<y> holding <patch>_VH.tif and <patch>_VV.tif",
                    )?
                    .require_bands(&["VH", "VV"]).patch_per_directory())
                },
            },
            SourceOption {
                flag: "bigearthnet-s2-dir",
                help: "BigEarthNet-S2 root: patch directories S2[AB]_MSIL2A_*_<x>_<y>/ with one <patch>_<band>.tif per band, at any depth",
                build: |_| {
                    Ok(Spec::new(
                        r"(?:^|/)(?P<key>S2[AB]_MSIL2A_[^/]*_\d+_\d+)/[^/]*_(?P<band>B0[1-9]|B1[12]|B8A)\.tif$",
                        "{key}",
                        BandRule::FromPath,
                        "patch directories named S2[AB]_MSIL2A_..._<x>_<y> holding <patch>_B01.tif ... <patch>_B12.tif",
                    )?
                    .require_bands(&S2_BANDS).patch_per_directory())
                },
            },
            SourceOption {
                flag: "bigearthnet-reference-maps-dir",
                help: "Reference_Maps root: files S2[AB]_MSIL2A_*_<x>_<y>_reference_map.tif, stored under the band name Data",
                build: |_| {
                    Spec::new(
                        r"(?:^|/)(?P<key>S2[AB]_MSIL2A_[^/]*_\d+_\d+_reference_map)\.tif$",
                        "{key}",
                        names(&["Data"]),
                        "files named S2[AB]_MSIL2A_..._<x>_<y>_reference_map.tif",
                    )
                },
            },
        ],
        params: Vec::new(),
    }
}

/// A dataset read from one `--dataset-dir` with no value options.
fn single_dir(
    name: &'static str,
    about: &'static str,
    help: &'static str,
    build: fn(&Params) -> Result<Spec>,
) -> Preset {
    Preset {
        name,
        about,
        sources: vec![SourceOption {
            flag: DATASET_DIR,
            help,
            build,
        }],
        params: Vec::new(),
    }
}

fn hyspecnet_11k() -> Preset {
    single_dir(
        "hyspecnet-11k",
        "HySpecNet-11k: EnMAP L2A hyperspectral patches, 224 bands B1..B224",
        "HySpecNet-11k root: patch directories ENMAP*_L2A*-Y<y>_X<x>/ holding <patch>-SPECTRAL_IMAGE.TIF, at any depth (quality layers and thumbnails are skipped)",
        |_| {
            Spec::new(
                r"(?:^|/)(?P<key>ENMAP[^/]*?_L2A[^/]*-Y\d+_X\d+)/[^/]*-SPECTRAL_IMAGE\.TIF$",
                "{key}",
                numbered(),
                "patch directories named ENMAP..._L2A...-Y<y>_X<x> holding <patch>-SPECTRAL_IMAGE.TIF",
            )
        },
    )
}

fn uc_merced() -> Preset {
    single_dir(
        "uc-merced",
        "UC Merced Land Use: RGB aerial images, bands Red Green Blue",
        "UC Merced root (e.g. UCMerced_LandUse): images <class>/<class><nn>.tif, at any depth",
        |_| {
            Spec::new(
                r"(?:^|/)(?P<key>[^/]*\d\d)\.tif$",
                "{key}",
                names(&["Red", "Green", "Blue"]),
                "3-band images named <class><nn>.tif",
            )
        },
    )
}

fn eurosat_multi_spectral() -> Preset {
    single_dir(
        "eurosat-multi-spectral",
        "EuroSAT multi-spectral: 13-band Sentinel-2 patches B01..B12, B08A",
        "EuroSAT_MS root: images <class>/<class>_<n>.tif, at any depth",
        |_| {
            Spec::new(
                r"(?:^|/)(?P<key>[^/]*\d+)\.tif$",
                "{key}",
                names(&EUROSAT_BANDS),
                "13-band images named <class>_<n>.tif",
            )
        },
    )
}

fn ssl4eo_s12() -> Preset {
    // The root's own name is part of the key so that L1C and L2A of one place do not collide;
    // the anchored pattern keeps patches exactly two levels below the root.
    fn ssl4eo(bands: &str, required: &[&str], what: &str) -> Result<Spec> {
        Ok(Spec::new(
            &format!(r"^(?P<location>[^/]+)/(?P<acquisition>[^/]+)/(?P<band>{bands})\.tif$"),
            "{root}_{location}_{acquisition}",
            BandRule::FromPath,
            &format!("patch directories <location>/<acquisition>/ holding {what}"),
        )?
        .require_bands(required)
        .patch_per_directory())
    }
    Preset {
        name: "ssl4eo-s12",
        about: "SSL4EO-S12: Sentinel-1 GRD, Sentinel-2 L1C and L2A patches",
        sources: vec![
            SourceOption {
                flag: "s1-dir",
                help: "Sentinel-1 root (e.g. s1): <location>/<acquisition>/{VH,VV}.tif",
                build: |_| ssl4eo("VH|VV", &["VH", "VV"], "VH.tif and VV.tif"),
            },
            SourceOption {
                flag: "s2-l1c-dir",
                help: "Sentinel-2 L1C root (e.g. s2c): <location>/<acquisition>/B1.tif ... B12.tif, B8A.tif",
                build: |_| ssl4eo(r"B[1-9]|B1[0-2]|B8A", &SSL4EO_L1C_BANDS, "B1.tif ... B12.tif and B8A.tif"),
            },
            SourceOption {
                flag: "s2-l2a-dir",
                help: "Sentinel-2 L2A root (e.g. s2a): <location>/<acquisition>/B1.tif ... B12.tif (no B10), B8A.tif",
                build: |_| {
                    let bands: Vec<&str> = SSL4EO_L1C_BANDS.iter().copied().filter(|b| *b != "B10").collect();
                    ssl4eo(r"B[1-9]|B1[12]|B8A", &bands, "B1.tif ... B12.tif (no B10) and B8A.tif")
                },
            },
        ],
        params: Vec::new(),
    }
}

fn major_tom_core() -> Preset {
    Preset {
        name: "major-tom-core",
        about: "Major-TOM-Core: Sentinel-1 RTC and Sentinel-2 L2A grid cells",
        sources: vec![
            SourceOption {
                flag: "s1-dir",
                help: "Core-S1RTC root: product directories S1[AB]_IW_GRDH_*_rtc/ holding vh.tif and vv.tif, at any depth (grid cell as parent)",
                build: |_| {
                    Ok(Spec::new(
                        r"(?:^|/)(?P<cell>[^/]+)/(?P<product>S1[AB]_IW_GRDH_[^/]*_rtc)/(?P<band>vh|vv)\.tif$",
                        "{cell}_{product}",
                        BandRule::FromPath,
                        "product directories named S1[AB]_IW_GRDH_..._rtc inside a grid-cell directory, holding vh.tif and vv.tif",
                    )?
                    .require_bands(&["vh", "vv"]).patch_per_directory())
                },
            },
            SourceOption {
                flag: "s2-dir",
                help: "Core-S2L2A root: product directories S2[AB]_MSIL2A_*/ holding B01.tif ... B12.tif, at any depth (grid cell as parent; cloud_mask.tif and thumbnail.png are skipped)",
                build: |_| {
                    Ok(Spec::new(
                        r"(?:^|/)(?P<cell>[^/]+)/(?P<product>S2[AB]_MSIL2A_[^/]*_[0-9T]+)/(?P<band>B0[1-9]|B1[12]|B8A)\.tif$",
                        "{cell}_{product}",
                        BandRule::FromPath,
                        "product directories named S2[AB]_MSIL2A_... inside a grid-cell directory, holding B01.tif ... B12.tif",
                    )?
                    .require_bands(&S2_BANDS).patch_per_directory())
                },
            },
        ],
        params: Vec::new(),
    }
}

fn hydro() -> Preset {
    single_dir(
        "hydro",
        "Hydro: 12-band Sentinel-2 patches B01..B12 (B8A, no B10)",
        "Hydro root: files patch_<n>.tif, at any depth",
        |_| {
            Spec::new(
                r"(?:^|/)(?P<key>patch_\d+)\.tif$",
                "{key}",
                names(&S2_BANDS),
                "12-band files named patch_<n>.tif",
            )
        },
    )
}

fn spectral_earth_enmap() -> Preset {
    single_dir(
        "spectral-earth-enmap",
        "SpectralEarth (EnMAP): 202-band hyperspectral patches B1..B202",
        "The enmap directory of SpectralEarth: files <patch dir>/<n>.tif exactly two levels below it",
        |_| {
            Spec::new(
                r"^(?P<dir>[^/]+)/(?P<file>\d+\.tif)$",
                "{dir}_{file}",
                numbered(),
                "files <patch dir>/<n>.tif directly inside the patch directories of the given root",
            )
        },
    )
}

fn mlrsnet() -> Preset {
    single_dir(
        "mlrsnet",
        "MLRSNet: RGB JPEGs, their 60 multi-hot labels to labels.csv",
        "MLRSNet root: Images/<category>/<name>.jpg and labels/<category>.csv (image name, then one 0/1 column per label)",
        |_| {
            Spec::new(
                r"(?:^|/)(?P<name>(?P<key>[^/]+)\.(?i:jpe?g))$",
                "{key}",
                names(&["Red", "Green", "Blue"]),
                "JPEG images Images/<category>/<name>.jpg",
            )?
            .labels(LabelRule::Tables { tables: builtin_regex(r"(?:^|/)(?i:labels)/[^/]+\.csv$")?, row: "name".to_string() })
        },
    )
}

fn builtin_regex(pattern: &str) -> Result<Regex> {
    Regex::new(pattern)
        .map_err(|e| Error::usage(format!("built-in pattern {pattern:?} is invalid: {e}")))
}

fn image_folder() -> Preset {
    Preset {
        name: "image-folder",
        about: "Any folder <class>/<image>.{tif,jpg,png}: classes to labels.csv",
        sources: vec![SourceOption {
            flag: DATASET_DIR,
            help: "Root of the image folder: images <class>/<image>.<ext> at any depth (tif, tiff, jpg, jpeg, png, any case); the folder holding an image is its class",
            build: image_folder_spec,
        }],
        params: vec![
            ParamOption {
                flag: "band-names",
                value_name: "NAMES",
                help: "Comma-separated band names, one per band of every image (e.g. Red,Green,Blue); default B1, B2, ...",
                required: false,
            },
            ParamOption {
                flag: "key-parents",
                value_name: "N",
                help: "Prefix each key with up to N parent folder names, '/'-separated (e.g. 1: forest/forest10), to keep keys unique; default 0 (key = file name without extension)",
                required: false,
            },
        ],
    }
}

/// Deepest `--key-parents` accepted.
const MAX_KEY_PARENTS: usize = 32;

fn image_folder_spec(params: &Params) -> Result<Spec> {
    let parents = match params.get("key-parents") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_KEY_PARENTS)
            .ok_or_else(|| {
                Error::usage(format!(
                    "--key-parents must be a whole number from 0 to {MAX_KEY_PARENTS}, not {v:?}"
                ))
            })?,
    };
    let bands = match params.get("band-names") {
        None => numbered(),
        Some(list) => {
            let band_names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
            if band_names.iter().any(String::is_empty) {
                return Err(Error::usage(format!(
                    "--band-names {list:?} has an empty name; give e.g. Red,Green,Blue"
                )));
            }
            if let Some(dup) = band_names
                .iter()
                .enumerate()
                .find(|(i, n)| band_names[..*i].contains(n))
            {
                return Err(Error::usage(format!(
                    "--band-names {list:?} names band {:?} twice",
                    dup.1
                )));
            }
            BandRule::Names(band_names)
        }
    };
    // The class is the folder holding the image. With N parents, the leftmost match takes as
    // many of the (at most N-1) folders above the class as the path has; '/' joins them so
    // that distinct paths always give distinct keys.
    let ext = format!(r"\.(?i:{IMAGE_EXTENSIONS})$");
    let (pattern, key) = match parents {
        0 => (
            format!(r"(?:^|/)(?P<class>[^/]+)/(?P<stem>[^/]+){ext}"),
            "{stem}",
        ),
        n => (
            format!(
                r"(?:^|/)(?P<parents>(?:[^/]+/){{0,{}}})(?P<class>[^/]+)/(?P<stem>[^/]+){ext}",
                n - 1
            ),
            "{parents}{class}/{stem}",
        ),
    };
    Ok(Spec::new(&pattern, key, bands, "images <class>/<image>.{tif,tiff,jpg,jpeg,png}")?
        .labels(LabelRule::Group("class".to_string()))?
        .duplicate_hint(
            "keys must be unique within one database: pass --key-parents 1 (key_parents=1 in Python) to prefix each key with its class folder",
        ))
}

fn bands() -> Preset {
    Preset {
        name: "bands",
        about: "Any archive with one file per band, grouped by a regular expression",
        sources: vec![SourceOption {
            flag: DATASET_DIR,
            help:
                "Root of the archive; --pattern is matched against each file's path relative to it",
            build: bands_spec,
        }],
        params: vec![ParamOption {
            flag: "pattern",
            value_name: "REGEX",
            help: r"Regular expression with named groups `key` and `band`, matched against each file's '/'-separated path relative to --dataset-dir (unanchored; files that do not match are skipped), e.g. '(?P<key>[^/]+)_(?P<band>B\d+A?)\.tif$'; every patch must have the same bands",
            required: true,
        }],
    }
}

fn bands_spec(params: &Params) -> Result<Spec> {
    let pattern = params
        .get("pattern")
        .ok_or_else(|| Error::usage("bands needs --pattern REGEX"))?;
    let re = Regex::new(pattern).map_err(|e| {
        Error::usage(format!(
            "--pattern {pattern:?} is not a valid regular expression: {e}"
        ))
    })?;
    for group in ["key", "band"] {
        if re.capture_names().flatten().all(|n| n != group) {
            return Err(Error::usage(format!("--pattern {pattern:?} has no named group `{group}`"))
                .hint(r"name the groups with (?P<key>...) and (?P<band>...), e.g. '(?P<key>[^/]+)_(?P<band>B\d+A?)\.tif$'"));
        }
    }
    Ok(Spec::new(
        pattern,
        "{key}",
        BandRule::FromPath,
        &format!("files whose path matches --pattern {pattern:?}"),
    )?
    .uniform_bands())
}

/// Every dataset rico converts by name, in the order `rico --help` lists them.
pub fn presets() -> Vec<Preset> {
    vec![
        bigearthnet(),
        hyspecnet_11k(),
        uc_merced(),
        eurosat_multi_spectral(),
        ssl4eo_s12(),
        major_tom_core(),
        hydro(),
        spectral_earth_enmap(),
        mlrsnet(),
        image_folder(),
        bands(),
    ]
}

/// The preset called `name`, or a usage error listing the known ones.
pub fn preset(name: &str) -> Result<Preset> {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = presets().iter().map(|p| p.name).collect();
            Error::usage(format!(
                "unknown dataset {name:?}; rico converts: {}",
                known.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn spec_of(name: &str, flag: &str, p: &Params) -> Spec {
        preset(name).unwrap().source(flag).unwrap().spec(p).unwrap()
    }

    /// The key and band the spec gives `rel`, or None when the file is not image data.
    fn key_of(spec: &Spec, root: &str, rel: &str) -> Option<(String, Option<String>)> {
        let caps = spec.pattern.captures(rel)?;
        Some((
            spec.key.render(root, &caps),
            caps.name("band").map(|m| m.as_str().to_string()),
        ))
    }

    #[test]
    fn presets_build_and_have_unique_names_and_flags() {
        let all = presets();
        let with = params(&[("pattern", r"(?P<key>.+)_(?P<band>B\d+)\.tif$")]);
        for (i, p) in all.iter().enumerate() {
            assert!(
                all[..i].iter().all(|q| q.name != p.name),
                "duplicate preset {}",
                p.name
            );
            assert!(!p.sources.is_empty());
            for s in &p.sources {
                assert!(s.flag.ends_with("-dir"), "{}", s.flag);
                s.spec(&with)
                    .unwrap_or_else(|e| panic!("{} --{}: {e}", p.name, s.flag));
            }
            for q in &p.params {
                assert!(!q.flag.ends_with("-dir"), "{}", q.flag);
                assert!(p.sources.iter().all(|s| s.flag != q.flag));
            }
        }
    }

    #[test]
    fn bigearthnet_s2_pattern_matches_v1_and_v2_layouts() {
        let s2 = spec_of("bigearthnet", "bigearthnet_s2_dir", &Params::default());
        let v2 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43_B8A.tif";
        let caps = s2.pattern.captures(v2).unwrap();
        assert_eq!(
            &caps["key"],
            "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
        );
        assert_eq!(&caps["band"], "B8A");
        let v1 = "S2B_MSIL2A_20180204T94160_0_1/S2B_MSIL2A_20180204T94160_0_1_B01.tif";
        assert_eq!(
            &s2.pattern.captures(v1).unwrap()["key"],
            "S2B_MSIL2A_20180204T94160_0_1"
        );
        assert!(s2
            .pattern
            .captures(
                "S2B_MSIL2A_20180204T94160_0_1/S2B_MSIL2A_20180204T94160_0_1_labels_metadata.json"
            )
            .is_none());
        assert!(s2
            .pattern
            .captures("S2B_MSIL2A_20180204T94160_0_1/S2B_MSIL2A_20180204T94160_0_1_B10.tif")
            .is_none());
    }

    #[test]
    fn ssl4eo_keys_carry_the_root_and_patches_sit_two_levels_down() {
        let l1c = spec_of("ssl4eo-s12", "s2-l1c-dir", &Params::default());
        let got = key_of(
            &l1c,
            "s2c",
            "0000200/20200604T054639_20200604T054831_T43RCP/B10.tif",
        )
        .unwrap();
        assert_eq!(
            got,
            (
                "s2c_0000200_20200604T054639_20200604T054831_T43RCP".into(),
                Some("B10".into())
            )
        );
        assert!(key_of(
            &l1c,
            "s2c",
            "0000200/20200604T054639_20200604T054831_T43RCP/metadata.json"
        )
        .is_none());
        assert!(key_of(&l1c, "s2c", "extra/0000200/20200604T054639/B1.tif").is_none());
        let l2a = spec_of("ssl4eo-s12", "s2-l2a-dir", &Params::default());
        assert!(key_of(&l2a, "s2a", "0000200/x/B10.tif").is_none());
        assert_eq!(l2a.required_bands.len(), 12);
        assert_eq!(l1c.required_bands.len(), 13);
    }

    #[test]
    fn major_tom_keys_are_cell_and_product() {
        let s2 = spec_of("major-tom-core", "s2-dir", &Params::default());
        let rel = "0U/0U_199R/S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419/B8A.tif";
        let (key, band) = key_of(&s2, "S2L2A", rel).unwrap();
        assert_eq!(
            key,
            "0U_199R_S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
        );
        assert_eq!(band.as_deref(), Some("B8A"));
        assert!(key_of(&s2, "S2L2A", &rel.replace("B8A.tif", "cloud_mask.tif")).is_none());
        assert!(key_of(&s2, "S2L2A", &rel.replace("B8A.tif", "thumbnail.png")).is_none());
        let s1 = spec_of("major-tom-core", "s1-dir", &Params::default());
        let (key, band) = key_of(
            &s1,
            "S1RTC",
            "1U/1U_2R/S1A_IW_GRDH_1SDV_20200101T000000_rtc/vh.tif",
        )
        .unwrap();
        assert_eq!(
            (key.as_str(), band.as_deref()),
            ("1U_2R_S1A_IW_GRDH_1SDV_20200101T000000_rtc", Some("vh"))
        );
    }

    #[test]
    fn single_file_presets_key_by_stem() {
        let p = Params::default();
        let cases = [
            ("uc-merced", "Images/forest/forest10.tif", Some("forest10")),
            ("uc-merced", "Images/forest/notes.tif", None),
            (
                "eurosat-multi-spectral",
                "AnnualCrop/AnnualCrop_1.tif",
                Some("AnnualCrop_1"),
            ),
            ("hydro", "patch_100.tif", Some("patch_100")),
            ("hydro", "sub/patch_7.tif", Some("patch_7")),
            (
                "spectral-earth-enmap",
                "1234/00017.tif",
                Some("1234_00017.tif"),
            ),
            ("spectral-earth-enmap", "a/1234/00017.tif", None),
            ("spectral-earth-enmap", "00017.tif", None),
            (
                "mlrsnet",
                "Images/airplane/airplane_00001.jpg",
                Some("airplane_00001"),
            ),
            ("mlrsnet", "labels/airplane.csv", None),
        ];
        for (name, rel, want) in cases {
            let spec = spec_of(name, "dataset-dir", &p);
            assert_eq!(
                key_of(&spec, "root", rel).map(|k| k.0).as_deref(),
                want,
                "{name} {rel}"
            );
        }
        let hsn = spec_of("hyspecnet-11k", "dataset-dir", &p);
        let dir = "ENMAP01-____L2A-DT0000004950_20221103T162438Z_001_V010110_20221118T145147Z-Y01460273_X03110438";
        assert_eq!(
            key_of(&hsn, "r", &format!("{dir}/{dir}-SPECTRAL_IMAGE.TIF"))
                .unwrap()
                .0,
            dir
        );
        assert!(key_of(&hsn, "r", &format!("{dir}/{dir}-QL_SWIR.TIF")).is_none());
        assert!(key_of(&hsn, "r", &format!("{dir}/{dir}-THUMBNAIL.jpg")).is_none());
    }

    #[test]
    fn image_folder_keys_classes_and_parents() {
        let plain = spec_of("image-folder", "dataset-dir", &Params::default());
        let caps = plain.pattern.captures("train/forest/forest10.JPG").unwrap();
        assert_eq!(
            (&caps["class"], plain.key.render("r", &caps).as_str()),
            ("forest", "forest10")
        );
        assert!(plain.pattern.captures("top.jpg").is_none());
        assert!(plain.pattern.captures("forest/readme.txt").is_none());
        assert!(matches!(plain.bands, BandRule::Numbered(_)));
        let two = spec_of(
            "image-folder",
            "dataset-dir",
            &params(&[("key-parents", "2")]),
        );
        let render = |rel: &str| two.key.render("r", &two.pattern.captures(rel).unwrap());
        assert_eq!(render("a/b/train/forest/x.png"), "train/forest/x");
        assert_eq!(render("forest/x.tiff"), "forest/x");
        let one = spec_of(
            "image-folder",
            "dataset-dir",
            &params(&[("key-parents", "1")]),
        );
        assert_eq!(
            one.key
                .render("r", &one.pattern.captures("a/forest/x.jpeg").unwrap()),
            "forest/x"
        );
        let named = spec_of(
            "image-folder",
            "dataset-dir",
            &params(&[("band-names", "R, G,B")]),
        );
        assert!(matches!(&named.bands, BandRule::Names(n) if n == &["R", "G", "B"]));
        let p = preset("image-folder").unwrap();
        for bad in [
            ("key-parents", "-1"),
            ("key-parents", "x"),
            ("band-names", "R,,B"),
            ("band-names", "R,R"),
        ] {
            let err = p.sources[0].spec(&params(&[bad])).err().unwrap();
            assert!(err.message.contains(bad.0), "{}", err.message);
        }
    }

    #[test]
    fn bands_pattern_is_checked_and_names_the_option() {
        let p = preset("bands").unwrap();
        let ok = p.sources[0]
            .spec(&params(&[(
                "pattern",
                r"(?P<key>[^/]+)_(?P<band>B\d+A?)\.tif$",
            )]))
            .unwrap();
        assert_eq!(
            key_of(&ok, "r", "s2/ROIs1158_spring_s2_1_p30_B8A.tif").unwrap(),
            ("ROIs1158_spring_s2_1_p30".into(), Some("B8A".into()))
        );
        assert!(ok.uniform_bands);
        for bad in [r"(?P<key>.+", r"(?P<key>.+)\.tif", r"(?P<band>.+)\.tif"] {
            let err = p.sources[0]
                .spec(&params(&[("pattern", bad)]))
                .err()
                .unwrap();
            assert!(err.message.contains("--pattern"), "{}", err.message);
        }
        assert!(p
            .params_from(&[])
            .unwrap_err()
            .message
            .contains("--pattern"));
        assert!(p
            .params_from(&[("nope".into(), "1".into())])
            .unwrap_err()
            .message
            .contains("--pattern"));
        assert_eq!(
            p.params_from(&[("pattern".into(), "x".into())])
                .unwrap()
                .get("pattern"),
            Some("x")
        );
        assert!(preset("hydro")
            .unwrap()
            .params_from(&[("pattern".into(), "x".into())])
            .unwrap_err()
            .message
            .contains("takes none"));
    }
}
