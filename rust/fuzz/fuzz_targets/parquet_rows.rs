//! Fuzzes the reading of Major-TOM's hub Parquet files: `rico_source::read_members` over a
//! file of the fuzzer's bytes. Damaged input must come back as a `SourceError` (the parquet
//! crate's own panics on hostile pages are caught and named), never as a panic, and no member
//! may be larger than the limit the read was given.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rico_source::{read_members, Container, Limits, Member, SourceError, Visitor};

struct Members {
    limit: u64,
}

impl Visitor for Members {
    type Error = SourceError;
    fn root(&mut self, _name: &str) -> Result<(), SourceError> {
        Ok(())
    }
    fn wants(&mut self, _rel: &str) -> bool {
        true
    }
    fn member(&mut self, member: Member<'_>) -> Result<(), SourceError> {
        assert!(member.bytes.len() as u64 <= self.limit, "{} bytes", member.bytes.len());
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("rico-fuzz-parquet-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("part_00001.parquet");
    std::fs::write(&path, data).expect("write the input");
    let limits = Limits { max_member_bytes: 16 << 20 };
    let mut members = Members { limit: limits.max_member_bytes };
    let _ = read_members(Path::new(&path), Container::Parquet, &limits, &mut members);
});
