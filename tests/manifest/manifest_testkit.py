"""Helpers for the manifest tests: tiny real images (PNG, JPEG, WebP) and loading shortcuts.

The images are built with the standard library only (zlib, struct): a PNG of RGB rows and a
baseline JPEG whose 8x8 blocks are each one flat colour (DC coefficients only), which every
decoder reads. ``python tests/manifest/manifest_testkit.py`` rewrites the example references
under ``jobs/refs/`` from these functions.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest

Pixel = Callable[[int, int], tuple[int, int, int]]
Write = Callable[..., Path]  # the ``write`` fixture: write(text, name="m.yaml") -> Path


def png_bytes(width: int, height: int, pixel: Pixel) -> bytes:
    """An 8-bit RGB PNG of ``width`` x ``height`` whose colours come from ``pixel(x, y)``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc = self.count = 0

    def flush(self) -> bytes:
        if self.count:
            self.write(0x7F, 8 - self.count)  # pad with 1 bits
        return bytes(self.out)


def _segment(marker: int, data: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(data) + 2) + data


def _ycbcr(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    r, g, b = rgb
    return (
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    )


def jpeg_bytes(width: int, height: int, pixel: Pixel) -> bytes:
    """A baseline YCbCr JPEG; each 8x8 block takes the colour of ``pixel`` at its top-left.

    ``width`` and ``height`` must be multiples of 8. With a DC quantiser of 8 a flat block's only
    coefficient is ``value - 128``; the DC Huffman table gives categories 0..11 four-bit codes and
    the AC table has the single symbol EOB.
    """
    assert width % 8 == 0 and height % 8 == 0
    header = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    header += _segment(0xDB, b"\x00" + bytes([8] + [16] * 63))
    components = b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    header += _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components)
    header += _segment(0xC4, b"\x00" + bytes([0, 0, 0, 12] + [0] * 12) + bytes(range(12)))
    header += _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")
    header += _segment(0xDA, b"\x03" + b"".join(bytes([i, 0]) for i in (1, 2, 3)) + b"\x00\x3f\x00")
    bits = _Bits()
    previous = [0, 0, 0]
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            for c, value in enumerate(_ycbcr(pixel(bx, by))):
                dc = max(-127, min(127, round(value - 128)))
                diff, previous[c] = dc - previous[c], dc
                size = abs(diff).bit_length()
                bits.write(size, 4)
                bits.write(diff if diff >= 0 else diff + (1 << size) - 1, size)
                bits.write(0, 1)  # EOB: every AC coefficient is zero
    return header + bits.flush() + b"\xff\xd9"


def webp_header() -> bytes:
    """The first bytes of a WebP file (enough for signature sniffing, not a decodable image)."""
    return b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8 " + bytes(22)


def gradient(width: int, height: int, tint: tuple[int, int, int]) -> Pixel:
    """A diagonal gradient towards ``tint``: simple, recognisable, compresses well."""

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        t = (x / max(1, width - 1) + y / max(1, height - 1)) / 2
        return tuple(round(40 + (c - 40) * t) for c in tint)  # type: ignore[return-value]

    return pixel


def problems(path: str | Path) -> list[str]:
    """The problem lines (``where: message``) loading ``path`` gives; fails if it loads.

    It also runs ``batchgen validate`` on the file, as a user would, and checks the command
    exits 2 with every one of those lines and no traceback.
    """
    try:
        load_manifest(Path(path))
    except ManifestError as exc:
        lines = [str(p) for p in exc.problems]
    else:
        raise AssertionError(f"{path} loaded without problems")
    _check_cli_exits_2(path, lines)
    return lines


def _check_cli_exits_2(path: str | Path, lines: list[str]) -> None:
    import contextlib
    import io

    from batchgen.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    text = err.getvalue()
    assert code == 2, (code, text)
    assert text.startswith("Error: ") and "Traceback" not in text, text
    shown = lines[:100]  # the CLI lists at most 100 problems
    assert all(line in text for line in shown), text


def write_example_refs(folder: Path) -> None:
    """(Re)write the example reference images of jobs/catalog.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mug.png").write_bytes(png_bytes(48, 48, gradient(48, 48, (200, 120, 60))))
    (folder / "backpack.png").write_bytes(png_bytes(48, 64, gradient(48, 64, (60, 140, 90))))
    (folder / "lamp.jpg").write_bytes(jpeg_bytes(64, 48, gradient(64, 48, (240, 210, 90))))


if __name__ == "__main__":
    write_example_refs(Path(__file__).resolve().parents[2] / "jobs" / "refs")


def gif_bytes() -> bytes:
    """A 1x1 GIF (an image type kling-3-0 does not accept)."""
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
        b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
