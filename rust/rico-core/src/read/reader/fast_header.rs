//! A fast path for the safetensors headers rico and Python's `safetensors` write.
//!
//! `SafeTensors::read_metadata` goes through serde's buffered `Content` (the header type uses
//! `#[serde(flatten)]`): about 80,000 instructions and 60 allocations for a 12-band record,
//! most of the cost of `ds[key]`. This parser handles the plain form — an object of tensor
//! entries with `dtype`, `shape` and `data_offsets`, no escapes, no `__metadata__` — and
//! applies the same checks as `read_metadata` + `Metadata::validate`. Anything else, and any
//! input it would refuse, gives `None`: the caller then takes the serde path, which accepts or
//! refuses it with its own message. So this path may only ever accept what the serde path
//! accepts, with the same result (the differential tests below hold it to that).

use safetensors::tensor::Dtype;

use super::TensorRef;

/// safetensors' limit on the header length.
const MAX_HEADER_SIZE: usize = 100_000_000;

/// A parsed tensor entry: name, dtype, shape, data offsets.
type Entry<'a> = (&'a str, Dtype, Vec<usize>, (usize, usize));

/// The tensors of `value`, sorted by name, or `None` to defer to the serde path.
pub(super) fn parse(value: &[u8]) -> Option<Vec<TensorRef>> {
    let n = usize::try_from(u64::from_le_bytes(value.get(..8)?.try_into().ok()?)).ok()?;
    if n > MAX_HEADER_SIZE {
        return None;
    }
    let header = value.get(8..8usize.checked_add(n)?)?;
    let mut p = Parser {
        bytes: header,
        at: 0,
    };
    p.eat(b'{')?;
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(16);
    loop {
        p.skip_ws();
        let name = p.string()?;
        if name == "__metadata__" {
            return None;
        }
        p.skip_ws();
        p.eat(b':')?;
        p.skip_ws();
        let (dtype, shape, offsets) = p.tensor_info()?;
        entries.push((name, dtype, shape, offsets));
        p.skip_ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.skip_ws();
    if p.at != header.len() {
        return None;
    }
    // Metadata::validate: in offset order, each tensor starts where the previous one ended
    // (the first at 0) and holds exactly dtype x shape bytes.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].3);
    let mut end_of_data = 0usize;
    for &i in &order {
        let (_, dtype, shape, (s, e)) = &entries[i];
        if *s != end_of_data || e < s {
            return None;
        }
        end_of_data = *e;
        let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        let bits = elements.checked_mul(dtype.bitsize())?;
        if bits % 8 != 0 || e - s != bits / 8 {
            return None;
        }
    }
    if end_of_data.checked_add(8 + n)? != value.len() {
        return None;
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // A repeated name: serde keeps one of them; let it decide.
    if entries.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let data_start = 8 + n;
    Some(
        entries
            .into_iter()
            .map(|(name, dtype, shape, (s, e))| TensorRef {
                name: name.to_string(),
                dtype,
                shape,
                start: data_start + s,
                end: data_start + e,
            })
            .collect(),
    )
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters, valid UTF-8.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => {}
            }
        }
        std::str::from_utf8(&self.bytes[start..self.at - 1]).ok()
    }

    /// A JSON integer that fits a usize: digits, no sign, no leading zero, no fraction.
    fn usize(&mut self) -> Option<usize> {
        let start = self.at;
        let mut value = 0usize;
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value.checked_mul(10)?.checked_add((b - b'0') as usize)?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        // "1.5", "1e3": floats, which serde refuses for a usize; let it say so.
        if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(value)
    }

    /// `[n, n, ...]`.
    fn usizes(&mut self) -> Option<Vec<usize>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(4);
        self.skip_ws();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(out);
        }
        loop {
            self.skip_ws();
            out.push(self.usize()?);
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(out),
                _ => return None,
            }
        }
    }

    /// `{"dtype": ..., "shape": [...], "data_offsets": [s, e]}` in any order, nothing else.
    fn tensor_info(&mut self) -> Option<(Dtype, Vec<usize>, (usize, usize))> {
        self.eat(b'{')?;
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        loop {
            self.skip_ws();
            let field = self.string()?;
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
            match field {
                "dtype" if dtype.is_none() => dtype = Some(dtype_named(self.string()?)?),
                "shape" if shape.is_none() => shape = Some(self.usizes()?),
                "data_offsets" if offsets.is_none() => match self.usizes()?.as_slice() {
                    &[s, e] => offsets = Some((s, e)),
                    _ => return None,
                },
                _ => return None, // unknown or repeated field
            }
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        Some((dtype?, shape?, offsets?))
    }
}

/// The whole-byte dtypes (sub-byte and complex ones take the serde path).
fn dtype_named(name: &str) -> Option<Dtype> {
    Some(match name {
        "BOOL" => Dtype::BOOL,
        "U8" => Dtype::U8,
        "I8" => Dtype::I8,
        "U16" => Dtype::U16,
        "I16" => Dtype::I16,
        "F16" => Dtype::F16,
        "BF16" => Dtype::BF16,
        "U32" => Dtype::U32,
        "I32" => Dtype::I32,
        "F32" => Dtype::F32,
        "U64" => Dtype::U64,
        "I64" => Dtype::I64,
        "F64" => Dtype::F64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use safetensors::tensor::View;

    use super::super::parse_record_serde;
    use super::*;

    struct Tensor {
        dtype: Dtype,
        shape: Vec<usize>,
        data: Vec<u8>,
    }

    impl View for &Tensor {
        fn dtype(&self) -> Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&self.data)
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
    }

    /// A tiny deterministic generator (no dev-dependency needed).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const DTYPES: [Dtype; 8] = [
        Dtype::U8,
        Dtype::I16,
        Dtype::U16,
        Dtype::F32,
        Dtype::F64,
        Dtype::BF16,
        Dtype::I64,
        Dtype::BOOL,
    ];

    fn random_record(rng: &mut Rng, with_metadata: bool) -> Vec<u8> {
        let count = 1 + rng.below(14) as usize;
        let tensors: Vec<(String, Tensor)> = (0..count)
            .map(|i| {
                let dtype = DTYPES[rng.below(DTYPES.len() as u64) as usize];
                let shape: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(5) as usize).collect();
                let bytes = shape.iter().product::<usize>() * dtype.bitsize() / 8;
                let name = match rng.below(4) {
                    0 => format!("B{i:02}"),
                    1 => format!("band é {i}"),
                    2 => format!("{}", 1000 - i),
                    _ => format!("VH_{i}"),
                };
                (
                    name,
                    Tensor {
                        dtype,
                        shape,
                        data: (0..bytes).map(|_| rng.next() as u8).collect(),
                    },
                )
            })
            .collect();
        let metadata =
            with_metadata.then(|| HashMap::from([("format".to_string(), "np".to_string())]));
        safetensors::tensor::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), metadata)
            .unwrap()
    }

    fn agree(value: &[u8]) {
        let slow = parse_record_serde(b"k", value);
        // None: deferred, the serde path decides. Some: serde must agree exactly.
        if let Some(fast) = parse(value) {
            let slow = slow.unwrap_or_else(|e| {
                panic!("fast path accepted what serde refuses ({e}): {value:?}")
            });
            assert_eq!(fast, slow, "fast and serde paths differ on {value:?}");
        }
    }

    #[test]
    fn takes_the_fast_path_on_written_records_with_the_serde_result() {
        let mut rng = Rng(1);
        for _ in 0..2000 {
            let value = random_record(&mut rng, false);
            let fast = parse(&value).expect("plain headers take the fast path");
            assert_eq!(fast, parse_record_serde(b"k", &value).unwrap());
        }
        let with_metadata = random_record(&mut rng, true);
        assert!(parse(&with_metadata).is_none());
        assert!(super::super::parse_record(b"k", &with_metadata).is_ok());
    }

    #[test]
    fn hand_written_headers() {
        let record = |header: &str, data: usize| {
            let mut v = (header.len() as u64).to_le_bytes().to_vec();
            v.extend_from_slice(header.as_bytes());
            v.extend(std::iter::repeat_n(0u8, data));
            v
        };
        // Spacing, field order, padding: accepted, same as serde.
        for h in [
            r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
            r#"{ "a" : { "shape" : [ 2 , 2 ] , "data_offsets" : [0, 8], "dtype" : "U16" } }    "#,
            "{\"a\":{\"dtype\":\"U16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}\n\t\r ",
        ] {
            let v = record(h, 8);
            assert!(parse(&v).is_some(), "{h}");
            agree(&v);
        }
        // Refused or deferred: none may be accepted unless serde accepts it too.
        for (h, data) in [
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                9,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                7,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,3],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[02,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2.0,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[-2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[1,9]}}"#,
                9,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8],"x":1}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"X9","shape":[2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}"#,
                2,
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                6,
            ),
            (
                r#"{"a\n":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a\u0062":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}x"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]},}"#,
                8,
            ),
            (
                r#" {"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U16","shape":[99999999999999999999,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (
                r#"{"a":{"dtype":"U64","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#,
                0,
            ),
            (
                r#"{"__metadata__":{"k":"v"},"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,8]}}"#,
                8,
            ),
            (r#"{}"#, 0),
        ] {
            let v = record(h, data);
            agree(&v);
        }
        assert!(parse(&[1, 2, 3]).is_none());
        assert!(parse(&(1u64 << 40).to_le_bytes()).is_none());
    }

    #[test]
    fn mutated_records_never_make_the_paths_disagree() {
        let mut rng = Rng(7);
        for round in 0..20_000 {
            let mut value = random_record(&mut rng, round % 50 == 0);
            for _ in 0..1 + rng.below(3) {
                let len = value.len() as u64;
                let at = rng.below(len.min(8 + 300)) as usize; // mostly inside the header
                match rng.below(4) {
                    0 => value[at] ^= 1 << rng.below(8),
                    1 => value[at] = b"{}[],:\"0123456789 \\e.-"[rng.below(22) as usize],
                    2 => {
                        value.insert(at, b"0 ,]}\""[rng.below(6) as usize]);
                    }
                    _ => {
                        value.remove(at);
                    }
                }
            }
            agree(&value);
        }
    }
}
