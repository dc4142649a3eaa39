//! One scan's entropy-coded data decoded into DCT coefficients: baseline and extended
//! sequential blocks, and the four kinds of progressive pass (DC first and refinement, AC
//! first and refinement), with restart intervals and end-of-band runs.

use super::headers::{Frame, Scan};
use super::huffman::{BitReader, Huffman};
use super::{corrupt, NATURAL_ORDER};
use crate::Result;

/// Decodes one scan's entropy-coded data starting at `pos`; returns where it ends.
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_scan(
    bytes: &[u8],
    pos: usize,
    f: &Frame,
    scan: &Scan,
    dc_tables: &[Option<Huffman>; 4],
    ac_tables: &[Option<Huffman>; 4],
    restart_interval: usize,
    coefs: &mut [Vec<i16>],
) -> Result<usize> {
    let mut reader = BitReader::new(bytes, pos);
    let missing = |kind: &str, id: usize| {
        corrupt(format!(
            "scan uses {kind} Huffman table {id}, which is not defined"
        ))
    };
    // Which tables this scan needs.
    let need_dc = scan.ss == 0 && scan.ah == 0;
    let need_ac = scan.se > 0;
    let mut dc: Vec<Option<&Huffman>> = Vec::new();
    let mut ac: Vec<Option<&Huffman>> = Vec::new();
    for &(_, td, ta) in &scan.components {
        dc.push(if need_dc {
            Some(dc_tables[td].as_ref().ok_or_else(|| missing("DC", td))?)
        } else {
            None
        });
        ac.push(if need_ac {
            Some(ac_tables[ta].as_ref().ok_or_else(|| missing("AC", ta))?)
        } else {
            None
        });
    }
    // libjpeg refuses interleaved MCUs of more than 10 blocks (the standard's limit).
    if scan.components.len() > 1
        && scan
            .components
            .iter()
            .map(|&(ci, _, _)| f.components[ci].h * f.components[ci].v)
            .sum::<usize>()
            > 10
    {
        return Err(corrupt(
            "sampling factors too large for an interleaved scan (more than 10 blocks per MCU)",
        ));
    }
    let mut pred = vec![0i32; scan.components.len()];
    let mut eobrun = 0u32;

    // MCU geometry: interleaved scans walk MCUs; a single-component scan walks that
    // component's real blocks one at a time.
    let single = scan.components.len() == 1;
    let (mcus_x, mcus_y) = if single {
        let c = &f.components[scan.components[0].0];
        (c.real_blocks_w, c.real_blocks_h)
    } else {
        (f.mcus_x, f.mcus_y)
    };
    let total = mcus_x * mcus_y;
    let mut block = [0i16; 64];
    for mcu in 0..total {
        if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
            reader.restart()?;
            pred.iter_mut().for_each(|p| *p = 0);
            eobrun = 0;
        }
        let (mx, my) = (mcu % mcus_x, mcu / mcus_x);
        for (si, &(ci, _, _)) in scan.components.iter().enumerate() {
            let c = &f.components[ci];
            let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
            for by in 0..bv {
                for bx in 0..bh {
                    let (x, y) = (mx * bh + bx, my * bv + by);
                    let offset = (y * c.blocks_w + x) * 64;
                    let dst = &mut coefs[ci][offset..offset + 64];
                    if !f.progressive {
                        let (Some(dc), Some(ac)) = (dc[si], ac[si]) else {
                            return Err(missing("DC or AC", 0));
                        };
                        block.fill(0);
                        decode_baseline(&mut reader, dc, ac, &mut pred[si], &mut block)?;
                        dst.copy_from_slice(&block);
                    } else if scan.ss == 0 {
                        if scan.ah == 0 {
                            let Some(table) = dc[si] else {
                                return Err(missing("DC", 0));
                            };
                            let s = reader.decode(table)? as u32;
                            pred[si] = pred[si].wrapping_add(reader.signed(s));
                            dst[0] = (pred[si] << scan.al) as i16;
                        } else if reader.bit() {
                            dst[0] |= (1i32 << scan.al) as i16;
                        }
                    } else {
                        let Some(table) = ac[si] else {
                            return Err(missing("AC", 0));
                        };
                        let pass = AcPass(table, scan, &mut eobrun);
                        if scan.ah == 0 {
                            ac_first(&mut reader, pass, dst)?;
                        } else {
                            ac_refine(&mut reader, pass, dst)?;
                        }
                    }
                }
            }
        }
        if reader.overrun {
            return Err(corrupt(
                "the entropy-coded data ends early (truncated or damaged file)",
            ));
        }
    }
    // Continue after the scan's data: the next marker.
    let mut end = reader.pos;
    while end + 1 < bytes.len()
        && !(bytes[end] == 0xFF
            && bytes[end + 1] != 0x00
            && !(0xD0..=0xD7).contains(&bytes[end + 1]))
    {
        end += 1;
    }
    Ok(end)
}

#[inline]
fn decode_baseline(
    r: &mut BitReader<'_>,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    block: &mut [i16; 64],
) -> Result<()> {
    let s = r.decode(dc)? as u32;
    *pred = pred.wrapping_add(r.signed(s));
    block[0] = *pred as i16;
    let mut k = 1usize;
    while k < 64 {
        let rs = r.decode(ac)?;
        let (run, size) = ((rs >> 4) as usize, (rs & 15) as u32);
        if size != 0 {
            k += run;
            block[NATURAL_ORDER[k]] = r.signed(size) as i16;
            k += 1;
        } else if run == 15 {
            k += 16;
        } else {
            break;
        }
    }
    Ok(())
}

/// What a progressive AC pass over one block reads with: the scan's Huffman table, the scan
/// (its band `ss..=se` and bit position `al`) and the scan's end-of-band run.
struct AcPass<'a>(&'a Huffman, &'a Scan, &'a mut u32);

fn ac_first(r: &mut BitReader<'_>, pass: AcPass<'_>, block: &mut [i16]) -> Result<()> {
    let AcPass(table, scan, eobrun) = pass;
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss;
    while k <= scan.se {
        let rs = r.decode(table)?;
        let (run, size) = ((rs >> 4) as u32, (rs & 15) as u32);
        if size != 0 {
            k += run as usize;
            let v = r.signed(size);
            block[NATURAL_ORDER[k]] = (v << scan.al) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            *eobrun = 1 << run;
            if run != 0 {
                *eobrun += r.bits(run) as u32;
            }
            *eobrun -= 1;
            break;
        }
        k += 1;
    }
    Ok(())
}

fn ac_refine(r: &mut BitReader<'_>, pass: AcPass<'_>, block: &mut [i16]) -> Result<()> {
    let AcPass(table, scan, eobrun) = pass;
    let p1: i32 = 1 << scan.al;
    let m1: i32 = -1 << scan.al;
    let mut k = scan.ss;
    let refine = |r: &mut BitReader<'_>, coef: &mut i16| {
        if r.bit() && (*coef as i32 & p1) == 0 {
            *coef = (*coef as i32 + if *coef >= 0 { p1 } else { m1 }) as i16;
        }
    };
    if *eobrun == 0 {
        while k <= scan.se {
            let rs = r.decode(table)?;
            let (mut run, size) = ((rs >> 4) as i32, (rs & 15) as u32);
            let mut value = 0i32;
            if size != 0 {
                // size must be 1; libjpeg warns and goes on, and so do we.
                value = if r.bit() { p1 } else { m1 };
            } else if run != 15 {
                *eobrun = 1 << run;
                if run != 0 {
                    *eobrun += r.bits(run as u32) as u32;
                }
                break;
            }
            // Skip `run` zero coefficients, refining the non-zero ones passed on the way.
            loop {
                let coef = &mut block[NATURAL_ORDER[k]];
                if *coef != 0 {
                    refine(r, coef);
                } else {
                    if run == 0 {
                        break;
                    }
                    run -= 1;
                }
                k += 1;
                if k > scan.se {
                    break;
                }
            }
            if value != 0 {
                block[NATURAL_ORDER[k]] = value as i16;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= scan.se {
            let coef = &mut block[NATURAL_ORDER[k]];
            if *coef != 0 {
                refine(r, coef);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}
