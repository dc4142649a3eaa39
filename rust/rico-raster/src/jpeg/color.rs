//! jdcolor.c: YCbCr to RGB with libjpeg's fixed-point tables.

const SCALEBITS: i32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);

const fn fix(x: f64) -> i32 {
    (x * (1 << SCALEBITS) as f64 + 0.5) as i32
}

pub(super) struct YccTables {
    pub(super) cr_r: [i32; 256],
    pub(super) cb_b: [i32; 256],
    pub(super) cr_g: [i32; 256],
    pub(super) cb_g: [i32; 256],
}

pub(super) fn ycc_tables() -> &'static YccTables {
    static TABLES: std::sync::OnceLock<YccTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = YccTables {
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        for i in 0..256 {
            let x = i as i32 - 128;
            t.cr_r[i] = (fix(1.40200) * x + ONE_HALF) >> SCALEBITS;
            t.cb_b[i] = (fix(1.77200) * x + ONE_HALF) >> SCALEBITS;
            t.cr_g[i] = -fix(0.71414) * x;
            t.cb_g[i] = -fix(0.34414) * x + ONE_HALF;
        }
        t
    })
}

/// Band-sequential R, G, B planes from full-size Y, Cb, Cr planes.
pub(super) fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8]) -> Vec<u8> {
    let t = ycc_tables();
    let n = y.len();
    let mut out = vec![0u8; 3 * n];
    let (r, rest) = out.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    for i in 0..n {
        let (yy, cbi, cri) = (y[i] as i32, cb[i] as usize, cr[i] as usize);
        r[i] = clamp(yy + t.cr_r[cri]);
        g[i] = clamp(yy + ((t.cb_g[cbi] + t.cr_g[cri]) >> SCALEBITS));
        b[i] = clamp(yy + t.cb_b[cbi]);
    }
    out
}
