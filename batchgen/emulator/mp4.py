"""Small valid MP4 files (H.264 video track) whose look is derived from a task id.

Each video is a few seconds of a coloured background with a square gliding across it; colours
and path come from a hash of the task id, so the bytes are deterministic per task. The file is
"fast start" (``moov`` before ``mdat``) so browsers play it straight from the URL.
"""

from __future__ import annotations

import functools
import hashlib
import struct

from .h264 import MB, flat_macroblock, idr_slice, p_slice, pps, sps

WIDTH, HEIGHT = 160, 90
WIDTH_MBS, HEIGHT_MBS = WIDTH // MB, -(-HEIGHT // MB)
FPS = 12
SECONDS = 2
UNITY_MATRIX = (0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def box(kind: bytes, *parts: bytes) -> bytes:
    """An ISO-BMFF box."""
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """An ISO-BMFF full box (version and flags before the payload)."""
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


@functools.lru_cache(maxsize=256)
def video_for(task_id: str) -> bytes:
    """The MP4 bytes served as the result of ``task_id``."""
    seed = hashlib.sha256(task_id.encode()).digest()
    frames = _frames(seed)
    tag = box(b"free", b"batchgen emulator result for " + task_id.encode())
    return mp4(frames, FPS, sps(WIDTH_MBS, HEIGHT_MBS, HEIGHT_MBS * MB - HEIGHT), pps()) + tag


def _frames(seed: bytes) -> list[bytes]:
    """Length-prefixed access units: one IDR picture, then P pictures moving a square."""
    y0, cb, cr, sq_cb, sq_cr, row = seed[:6]
    cb, cr = 96 + cb % 64, 96 + cr % 64  # muted background hue
    background = [flat_macroblock(40 + y0 % 40 + 14 * r, cb, cr) for r in range(HEIGHT_MBS)]
    square = flat_macroblock(210, 256 - cb + sq_cb % 16, 256 - cr + sq_cr % 16)
    total = WIDTH_MBS * HEIGHT_MBS
    path_row = row % HEIGHT_MBS
    pictures = [idr_slice(background[a // WIDTH_MBS] for a in range(total))]
    previous: int | None = None
    for n in range(1, FPS * SECONDS):
        here = path_row * WIDTH_MBS + (n - 1) % WIDTH_MBS
        changed = {here: square}
        if previous is not None and previous != here:
            changed[previous] = background[previous // WIDTH_MBS]
        pictures.append(p_slice(n, total, changed))
        previous = here
    return [struct.pack(">I", len(p)) + p for p in pictures]


def mp4(samples: list[bytes], fps: int, sps_nal: bytes, pps_nal: bytes) -> bytes:
    """A fast-start MP4 with one H.264 track holding ``samples`` (first one a sync sample)."""
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    duration_ms = len(samples) * 1000 // fps
    moov_size = len(_moov(samples, fps, duration_ms, sps_nal, pps_nal, 0))
    offset = len(ftyp) + moov_size + 8
    moov = _moov(samples, fps, duration_ms, sps_nal, pps_nal, offset)
    return ftyp + moov + box(b"mdat", *samples)


def _moov(
    samples: list[bytes], fps: int, duration_ms: int, sps_nal: bytes, pps_nal: bytes, offset: int
) -> bytes:
    matrix = struct.pack(">9I", *UNITY_MATRIX)
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, 1000, duration_ms),
        struct.pack(">IH10x", 0x00010000, 0x0100),
        matrix,
        bytes(24),
        struct.pack(">I", 2),
    )
    tkhd = full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII8xHHH2x", 0, 0, 1, 0, duration_ms, 0, 0, 0),
        matrix,
        struct.pack(">II", WIDTH << 16, HEIGHT << 16),
    )
    mdia = box(
        b"mdia", _mdhd(len(samples), fps), _hdlr(), _minf(samples, fps, sps_nal, pps_nal, offset)
    )
    return box(b"moov", mvhd, box(b"trak", tkhd, mdia))


def _mdhd(count: int, fps: int) -> bytes:
    timescale = fps * 1000
    return full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, count * 1000, 0x55C4, 0))


def _hdlr() -> bytes:
    return full_box(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", bytes(12), b"VideoHandler\0")


def _minf(samples: list[bytes], fps: int, sps_nal: bytes, pps_nal: bytes, offset: int) -> bytes:
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        _stsd(sps_nal, pps_nal),
        full_box(b"stts", 0, 0, struct.pack(">III", 1, len(samples), 1000)),
        full_box(b"stss", 0, 0, struct.pack(">II", 1, 1)),
        full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(samples), 1)),
        full_box(
            b"stsz",
            0,
            0,
            struct.pack(">II", 0, len(samples)),
            b"".join(struct.pack(">I", len(s)) for s in samples),
        ),
        full_box(b"stco", 0, 0, struct.pack(">II", 1, offset)),
    )
    return box(b"minf", vmhd, dinf, stbl)


def _stsd(sps_nal: bytes, pps_nal: bytes) -> bytes:
    avcc = box(
        b"avcC",
        bytes([1, sps_nal[1], sps_nal[2], sps_nal[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps_nal)),
        sps_nal,
        bytes([1]),
        struct.pack(">H", len(pps_nal)),
        pps_nal,
    )
    compressor = bytes([8]) + b"batchgen".ljust(31, b"\0")
    avc1 = box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HH", WIDTH, HEIGHT),
        struct.pack(">III", 0x00480000, 0x00480000, 0),
        struct.pack(">H", 1),
        compressor,
        struct.pack(">Hh", 0x0018, -1),
        avcc,
    )
    return full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1)
