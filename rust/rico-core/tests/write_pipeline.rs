//! The write pipeline end to end on the real samples (`tests/data/samples`, see its README):
//! planning, reading, decoding, the single writer, and the sharded run over the same stages.
//!
//! - every record holds exactly the bands `rico_raster` decodes from its source files, byte
//!   for byte, under the names, dtype and shape the plan gives them;
//! - a sharded conversion holds the same records, byte for byte, as the single-directory run;
//! - the output is the one recorded in [`DIGESTS`]: a digest of every key and value (and of the
//!   manifest of the sharded run), so that a change to the pipeline that changes one byte of a
//!   database shows here. A deliberate change of the record format updates the digests (the
//!   failing assertion prints the new one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rico_core::read::reader::Database;
use rico_core::write::spec::FileBands;
use rico_core::{convert_dataset, ConvertOptions};

/// FNV-1a (64 bits) of every (key, value) of a run in key order, then of the manifest: the
/// output of each dataset as recorded before the write layer was split into stages (issue 18).
const DIGESTS: &[(&str, u64)] = &[
    ("bigearthnet", 0xd378_0e66_ddd9_62f0),
    ("ssl4eo-s12", 0x19e2_cda2_fe11_2d02),
    ("hydro", 0x11dd_d154_f858_ff62),
    ("bigearthnet sharded", 0x2267_141b_cd94_e631),
    ("hydro sharded", 0xefdb_e2e0_c552_d700),
];

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/samples")
}

/// The sources of each dataset tested, as the command line names them.
fn sources(name: &str) -> Vec<(String, PathBuf)> {
    let s = samples();
    let pairs: Vec<(&str, PathBuf)> = match name {
        "bigearthnet" => vec![
            ("bigearthnet-s1-dir", s.join("BigEarthNet/BigEarthNet-S1")),
            ("bigearthnet-s2-dir", s.join("BigEarthNet/BigEarthNet-S2")),
            (
                "bigearthnet-reference-maps-dir",
                s.join("BigEarthNet/Reference_Maps"),
            ),
        ],
        "ssl4eo-s12" => vec![
            ("s1-dir", s.join("SSL4EO-S12/s1")),
            ("s2-l2a-dir", s.join("SSL4EO-S12/s2a")),
            ("s2-l1c-dir", s.join("SSL4EO-S12/s2c")),
        ],
        "hydro" => vec![("dataset-dir", s.join("Hydro"))],
        _ => unreachable!("{name}"),
    };
    pairs
        .into_iter()
        .map(|(flag, dir)| (flag.to_string(), dir))
        .collect()
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rico-write-pipeline-{}-{}-{what}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(shards: Option<usize>) -> ConvertOptions {
    ConvertOptions {
        threads: Some(2),
        io_depth: Some(4),
        progress: Some(false),
        shards,
        ..ConvertOptions::default()
    }
}

/// Every (key, value) of the database (plain or sharded) at `path`.
fn records(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = Database::open(path).unwrap();
    let mut out = BTreeMap::new();
    for key in db.keys().unwrap() {
        let value = db.get(&key).unwrap().expect("a listed key has a value");
        let value = value.to_vec();
        out.insert(key, value);
    }
    assert_eq!(out.len() as u64, db.len().unwrap());
    out
}

#[derive(Default)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        // The length first: (key, value) pairs cannot run into one another.
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn digest(records: &BTreeMap<Vec<u8>, Vec<u8>>, manifest: Option<&[u8]>) -> u64 {
    let mut h = Fnv::new();
    for (k, v) in records {
        h.bytes(k);
        h.bytes(v);
    }
    if let Some(m) = manifest {
        h.bytes(m);
    }
    h.0
}

fn check_digest(what: &str, got: u64) {
    let want = DIGESTS.iter().find(|(w, _)| *w == what).unwrap().1;
    assert_eq!(
        got, want,
        "the output of {what} changed: digest {got:#018x}, recorded {want:#018x}"
    );
}

/// The tensors of a safetensors record: name -> (dtype, shape, bytes).
#[allow(clippy::type_complexity)]
fn tensors(value: &[u8]) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let n = u64::from_le_bytes(value[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&value[8..8 + n]).unwrap();
    let data = &value[8 + n..];
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let offsets: Vec<usize> = t["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap() as usize)
            .collect();
        let shape = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        out.insert(
            name.clone(),
            (
                t["dtype"].as_str().unwrap().to_string(),
                shape,
                data[offsets[0]..offsets[1]].to_vec(),
            ),
        );
    }
    out
}

fn dtype_name(dtype: rico_core::DType) -> String {
    format!("{:?}", rico_core::base::record::to_safetensors_dtype(dtype))
}

/// Checks that every record of `got` holds exactly the bands rico_raster decodes from the
/// files its patch plans, and that every planned patch has its record.
fn check_against_sources(name: &str, got: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let (patches, skipped) =
        rico_core::write::convert::plan_dataset(name, &sources(name), &options(None)).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(patches.len(), got.len(), "{name}: one record per patch");
    for patch in &patches {
        let value = got
            .get(patch.key.as_bytes())
            .unwrap_or_else(|| panic!("{name}: no record {}", patch.key));
        let mut want = BTreeMap::new();
        for file in &patch.files {
            let bytes = std::fs::read(file.path()).unwrap();
            let raster = rico_core::raster::decode(&bytes).unwrap();
            let info = raster.info;
            let names: Vec<String> = match &file.bands {
                FileBands::One(n) => vec![n.to_string()],
                FileBands::Names(n) => n.to_vec(),
                FileBands::Numbered(p) => (1..=info.bands).map(|i| format!("{p}{i}")).collect(),
            };
            assert_eq!(names.len(), info.bands, "{}", file.path().display());
            for (i, band) in names.into_iter().enumerate() {
                let t = (
                    dtype_name(info.dtype),
                    vec![info.height, info.width],
                    raster.band(i).to_vec(),
                );
                assert!(want.insert(band, t).is_none());
            }
        }
        let have = tensors(value);
        assert_eq!(
            have.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: bands of {}",
            patch.key
        );
        for (band, t) in &want {
            assert!(
                have[band] == *t,
                "{name}: band {band} of {} differs from its source",
                patch.key
            );
        }
    }
}

/// Converts `name` into one directory; returns its records.
fn convert_single(name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let dir = Scratch::new(name);
    let target = dir.0.join("db");
    let summary = convert_dataset(name, &sources(name), &target, &options(None)).unwrap();
    let got = records(&target);
    assert_eq!(summary.records, got.len() as u64);
    assert_eq!(summary.skipped, 0);
    got
}

/// Converts `name` into `shards` shards; returns the records of the sharded database, those
/// of each shard's own directory joined, and the manifest's bytes.
#[allow(clippy::type_complexity)]
fn convert_sharded(
    name: &str,
    shards: usize,
) -> (
    BTreeMap<Vec<u8>, Vec<u8>>,
    BTreeMap<Vec<u8>, Vec<u8>>,
    Vec<u8>,
) {
    let dir = Scratch::new(&format!("{name}-sharded"));
    let target = dir.0.join("db");
    let summary = convert_dataset(name, &sources(name), &target, &options(Some(shards))).unwrap();
    let whole = records(&target);
    assert_eq!(summary.records, whole.len() as u64);
    let mut joined = BTreeMap::new();
    for index in 0..shards {
        let shard = target.join(format!("shard-{index:05}"));
        for (k, v) in records(&shard) {
            assert!(joined.insert(k, v).is_none(), "a key in two shards");
        }
    }
    let manifest = std::fs::read_to_string(target.join("rico-manifest.json")).unwrap();
    // The digest holds across releases: the version the manifest names is left out.
    let manifest = manifest.replace(env!("CARGO_PKG_VERSION"), "VERSION");
    (whole, joined, manifest.into_bytes())
}

#[test]
fn bigearthnet_records_are_their_sources_bands() {
    let got = convert_single("bigearthnet");
    assert_eq!(
        got.len(),
        3,
        "one S1 patch, one S2 patch, one reference map"
    );
    let bands: Vec<usize> = got.values().map(|v| tensors(v).len()).collect();
    assert_eq!(bands, vec![2, 1, 12]); // S1A_..., S2A_..._26_57_reference_map, S2A_..._75_43
    check_against_sources("bigearthnet", &got);
    check_digest("bigearthnet", digest(&got, None));
}

#[test]
fn ssl4eo_records_are_their_sources_bands() {
    let got = convert_single("ssl4eo-s12");
    let bands: Vec<usize> = got.values().map(|v| tensors(v).len()).collect();
    assert_eq!(bands, vec![2, 12, 13]); // s1_, s2a_ (no B10), s2c_
    check_against_sources("ssl4eo-s12", &got);
    check_digest("ssl4eo-s12", digest(&got, None));
}

#[test]
fn hydro_records_are_their_sources_bands() {
    let got = convert_single("hydro");
    assert_eq!(got.len(), 4);
    check_against_sources("hydro", &got);
    check_digest("hydro", digest(&got, None));
}

#[test]
fn a_sharded_run_writes_the_records_of_the_single_run() {
    for (name, shards) in [("bigearthnet", 2), ("hydro", 3)] {
        let single = convert_single(name);
        let (whole, joined, manifest) = convert_sharded(name, shards);
        assert!(whole == single, "{name}: the sharded database differs");
        assert!(joined == single, "{name}: the shards' records differ");
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m["shards"].as_array().unwrap().len(), shards);
        assert_eq!(m["records"].as_u64(), Some(single.len() as u64));
        check_digest(&format!("{name} sharded"), digest(&whole, Some(&manifest)));
    }
}
