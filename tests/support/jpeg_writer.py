"""A minimal baseline JPEG writer with any sampling factors (tests only).

Pillow writes only 4:4:4, 4:2:2 and 4:2:0; this writes what cameras and other encoders may
produce (4:4:0, 4:1:1, odd factor mixes, restart intervals), so that rico's decoder can be
compared with Pillow's on them. Huffman tables are flat (every symbol one fixed-length code),
which is valid JPEG and keeps this short; image quality is irrelevant here.
"""

from __future__ import annotations

import struct

import numpy as np

ZIGZAG = np.array(
    [
        0,
        1,
        8,
        16,
        9,
        2,
        3,
        10,
        17,
        24,
        32,
        25,
        18,
        11,
        4,
        5,
        12,
        19,
        26,
        33,
        40,
        48,
        41,
        34,
        27,
        20,
        13,
        6,
        7,
        14,
        21,
        28,
        35,
        42,
        49,
        56,
        57,
        50,
        43,
        36,
        29,
        22,
        15,
        23,
        30,
        37,
        44,
        51,
        58,
        59,
        52,
        45,
        38,
        31,
        39,
        46,
        53,
        60,
        61,
        54,
        47,
        55,
        62,
        63,
    ]
)
_k = np.arange(8)
DCT = np.sqrt(2 / 8) * np.cos((2 * _k[None, :] + 1) * _k[:, None] * np.pi / 16)
DCT[0] /= np.sqrt(2)
DC_SYMBOLS = list(range(12))
AC_SYMBOLS = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, n: int) -> None:
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = self.n = 0

    def flush(self) -> None:
        while self.n:
            self.put(1, 1)


def _category(v: int) -> int:
    return int(abs(v)).bit_length()


def _magnitude_bits(v: int, s: int) -> int:
    return v if v >= 0 else v + (1 << s) - 1


def write_jpeg(
    rgb: np.ndarray,
    sampling: list[tuple[int, int]],
    quant: int = 4,
    restart: int = 0,
    gray: bool = False,
) -> bytes:
    """JPEG bytes of ``rgb`` (h, w, 3) uint8, or of ``rgb`` (h, w) with ``gray``; ``sampling``
    gives (h, v) per component (Y, Cb, Cr)."""
    if gray:
        planes = [rgb.astype(np.float64)]
    else:
        r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
        planes = [
            0.299 * r + 0.587 * g + 0.114 * b,
            -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
            0.5 * r - 0.418688 * g - 0.081312 * b + 128,
        ]
    height, width = planes[0].shape
    maxh = max(h for h, _ in sampling)
    maxv = max(v for _, v in sampling)
    mcux, mcuy = -(-width // (8 * maxh)), -(-height // (8 * maxv))
    comps = []
    for plane, (h, v) in zip(planes, sampling):
        # Nearest-neighbour downsampling, then pad to whole MCUs by edge replication.
        cw, ch = -(-width * h // maxh), -(-height * v // maxv)
        ys = np.minimum((np.arange(ch) * maxv) // v, height - 1)
        xs = np.minimum((np.arange(cw) * maxh) // h, width - 1)
        small = plane[ys][:, xs]
        padded = np.pad(small, ((0, mcuy * v * 8 - ch), (0, mcux * h * 8 - cw)), mode="edge")
        comps.append(padded)
    bits = _Bits()
    pred = [0] * len(comps)
    mcu_count = 0
    for my in range(mcuy):
        for mx in range(mcux):
            if restart and mcu_count and mcu_count % restart == 0:
                bits.flush()
                bits.out += bytes([0xFF, 0xD0 + (mcu_count // restart - 1) % 8])
                pred = [0] * len(comps)
            mcu_count += 1
            for ci, (plane, (h, v)) in enumerate(zip(comps, sampling)):
                for by in range(v):
                    for bx in range(h):
                        y0, x0 = (my * v + by) * 8, (mx * h + bx) * 8
                        block = plane[y0 : y0 + 8, x0 : x0 + 8] - 128
                        coef = np.round(DCT @ block @ DCT.T / quant).astype(int).reshape(64)[ZIGZAG]
                        coef = np.clip(coef, -1023, 1023)
                        diff = int(coef[0]) - pred[ci]
                        pred[ci] = int(coef[0])
                        s = _category(diff)
                        bits.put(DC_SYMBOLS.index(s), 4)
                        bits.put(_magnitude_bits(diff, s), s)
                        run = 0
                        last = max((i for i in range(1, 64) if coef[i]), default=0)
                        for i in range(1, last + 1):
                            c = int(coef[i])
                            if c == 0:
                                run += 1
                                continue
                            while run > 15:
                                bits.put(AC_SYMBOLS.index(0xF0), 8)
                                run -= 16
                            s = _category(c)
                            bits.put(AC_SYMBOLS.index((run << 4) | s), 8)
                            bits.put(_magnitude_bits(c, s), s)
                            run = 0
                        if last < 63:
                            bits.put(AC_SYMBOLS.index(0x00), 8)
    bits.flush()

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    out = bytearray(b"\xff\xd8")
    out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += segment(0xDB, bytes([0]) + bytes([quant] * 64))
    sof = struct.pack(">BHHB", 8, height, width, len(comps))
    for i, (h, v) in enumerate(sampling):
        sof += bytes([i + 1, (h << 4) | v, 0])
    out += segment(0xC0, sof)
    dc_counts = [0] * 16
    dc_counts[3] = len(DC_SYMBOLS)
    ac_counts = [0] * 16
    ac_counts[7] = len(AC_SYMBOLS)
    out += segment(
        0xC4, bytes([0x00] + dc_counts + DC_SYMBOLS) + bytes([0x10] + ac_counts + AC_SYMBOLS)
    )
    if restart:
        out += segment(0xDD, struct.pack(">H", restart))
    sos = (
        bytes([len(comps)])
        + b"".join(bytes([i + 1, 0x00]) for i in range(len(comps)))
        + bytes([0, 63, 0])
    )
    out += segment(0xDA, sos)
    out += bits.out
    out += b"\xff\xd9"
    return bytes(out)
