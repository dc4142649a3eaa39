//! Entropy-coded data at the bit level: Huffman tables and the bit reader that decodes
//! their codes (byte stuffing removed, stopping at markers, restart markers skipped).

use super::corrupt;
use crate::Result;

/// A Huffman table: canonical codes, decoded with a 9-bit lookup and the JPEG standard's
/// maxcode/valptr method for longer codes.
#[derive(Clone)]
pub(super) struct Huffman {
    /// For each 9-bit prefix: (code length, symbol), length 0 when the code is longer.
    lookup: Vec<(u8, u8)>,
    /// Largest code of each length (index 1..=16), -1 when none; `maxcode[17]` is a sentinel.
    maxcode: [i32; 18],
    /// `symbols index of the first code of length l` minus that code.
    valoffset: [i32; 17],
    symbols: Vec<u8>,
}

const LOOKUP_BITS: u32 = 9;

impl Huffman {
    pub(super) fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Result<Huffman> {
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 17];
        let mut lookup = vec![(0u8, 0u8); 1 << LOOKUP_BITS];
        let mut code: i32 = 0;
        let mut k: i32 = 0;
        for len in 1..=16usize {
            let n = counts[len - 1] as i32;
            // The codes of this length must fit in `len` bits.
            if code + n > (1 << len) {
                return Err(corrupt(
                    "a Huffman table has more codes than its code lengths allow",
                ));
            }
            if n > 0 {
                valoffset[len] = k - code;
                for i in 0..n {
                    let c = code + i;
                    if len as u32 <= LOOKUP_BITS {
                        let shift = LOOKUP_BITS - len as u32;
                        let first = (c as usize) << shift;
                        for entry in &mut lookup[first..first + (1 << shift)] {
                            *entry = (len as u8, symbols[(k + i) as usize]);
                        }
                    }
                }
                code += n;
                k += n;
                maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Ok(Huffman {
            lookup,
            maxcode,
            valoffset,
            symbols,
        })
    }
}

/// Bits of one scan's entropy-coded data: byte stuffing removed, stops at markers.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pub(super) pos: usize,
    bits: u64,
    /// Real bits in `bits` (from the top).
    count: u32,
    /// A marker was reached; no more data bytes.
    at_marker: bool,
    /// More bits were consumed than the data held.
    pub(super) overrun: bool,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            bits: 0,
            count: 0,
            at_marker: false,
            overrun: false,
        }
    }

    fn fill(&mut self) {
        while self.count <= 56 && !self.at_marker {
            let Some(&byte) = self.data.get(self.pos) else {
                self.at_marker = true;
                break;
            };
            if byte == 0xFF {
                let next = self.data.get(self.pos + 1).copied();
                match next {
                    Some(0x00) => self.pos += 2,
                    // Fill bytes before a marker.
                    Some(0xFF) => {
                        self.pos += 1;
                        continue;
                    }
                    _ => {
                        self.at_marker = true;
                        break;
                    }
                }
            } else {
                self.pos += 1;
            }
            self.bits |= (byte as u64) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline]
    fn peek(&mut self, n: u32) -> u32 {
        if self.count < n {
            self.fill();
        }
        (self.bits >> (64 - n)) as u32
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        if n > self.count {
            self.overrun = true;
            self.count = 0;
            self.bits = 0;
        } else {
            self.bits <<= n;
            self.count -= n;
        }
    }

    #[inline]
    pub(super) fn bits(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.consume(n);
        v as i32
    }

    #[inline]
    pub(super) fn bit(&mut self) -> bool {
        self.bits(1) != 0
    }

    /// A value of `s` bits, sign-extended as in JPEG's EXTEND.
    #[inline]
    pub(super) fn signed(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s);
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    #[inline]
    pub(super) fn decode(&mut self, table: &Huffman) -> Result<u8> {
        let prefix = self.peek(16);
        let (len, symbol) = table.lookup[(prefix >> (16 - LOOKUP_BITS)) as usize];
        if len > 0 {
            self.consume(len as u32);
            return Ok(symbol);
        }
        for len in LOOKUP_BITS as usize + 1..=16 {
            let code = (prefix >> (16 - len)) as i32;
            if code <= table.maxcode[len] {
                self.consume(len as u32);
                let index = (code + table.valoffset[len]) as usize;
                return table
                    .symbols
                    .get(index)
                    .copied()
                    .ok_or_else(|| corrupt("bad Huffman code"));
            }
        }
        Err(corrupt("bad Huffman code in the entropy-coded data"))
    }

    /// Skips to just after the next RSTn marker (expected at a restart interval's end).
    pub(super) fn restart(&mut self) -> Result<()> {
        self.bits = 0;
        self.count = 0;
        self.at_marker = false;
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF {
                let m = self.data[self.pos + 1];
                if (0xD0..=0xD7).contains(&m) {
                    self.pos += 2;
                    return Ok(());
                }
                if m != 0x00 && m != 0xFF {
                    return Err(corrupt("a restart marker is missing"));
                }
            }
            self.pos += 1;
        }
        Err(corrupt("the data ends where a restart marker should be"))
    }
}
