"""The result video: a structurally valid, fast-start H.264 MP4, deterministic per task."""

from __future__ import annotations

import struct

from batchgen.emulator.mp4 import FPS, HEIGHT, SECONDS, WIDTH, video_for


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """Top-level ISO-BMFF boxes in ``data[start:end]`` as (type, payload start, end)."""
    end = len(data) if end is None else end
    found = []
    while start < end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        assert size >= 8 and start + size <= end, f"box {kind!r} overruns its parent"
        found.append((kind, start + 8, start + size))
        start += size
    return found


def find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Payload bounds of the box at ``path`` (container boxes only on the way)."""
    for kind, s, e in boxes(data, start, end):
        if kind == path[0]:
            return (s, e) if len(path) == 1 else find(data, path[1:], s, e)
    raise AssertionError(f"no {path[0]!r} box")


def test_boxes_nest_and_moov_comes_first():
    """ftyp, moov, mdat follow each other exactly, moov before mdat (plays while loading)."""
    data = video_for("task_a")
    assert [k for k, _, _ in boxes(data)] == [b"ftyp", b"moov", b"mdat", b"free"]


def test_sample_table_points_at_the_media():
    """The sample sizes add up to mdat and the chunk offset points at its first byte."""
    data = video_for("task_b")
    stbl = [b"moov", b"trak", b"mdia", b"minf", b"stbl"]
    s, _ = find(data, [*stbl, b"stsz"])
    _, _, count = struct.unpack(">III", data[s : s + 12])
    sizes = struct.unpack(f">{count}I", data[s + 12 : s + 12 + 4 * count])
    s, _ = find(data, [*stbl, b"stco"])
    (offset,) = struct.unpack(">I", data[s + 8 : s + 12])
    mdat_start, mdat_end = find(data, [b"mdat"])
    assert count == FPS * SECONDS
    assert offset == mdat_start and sum(sizes) == mdat_end - mdat_start
    first = data[offset : offset + sizes[0]]
    assert struct.unpack(">I", first[:4])[0] == sizes[0] - 4
    assert first[4] & 0x1F == 5  # an IDR picture opens the stream


def test_track_is_h264_with_its_parameter_sets():
    """The sample entry is avc1 at the video size with an avcC holding SPS and PPS."""
    data = video_for("task_c")
    s, e = find(data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    entry = data[s + 8 : e]
    assert entry[4:8] == b"avc1"
    width, height = struct.unpack(">HH", entry[8 + 24 : 8 + 28])
    assert (width, height) == (WIDTH, HEIGHT)
    avcc = entry.index(b"avcC")
    assert entry[avcc + 4] == 1 and entry[avcc + 5] == 66  # version 1, Baseline profile
    sps_len = struct.unpack(">H", entry[avcc + 10 : avcc + 12])[0]
    assert entry[avcc + 12] & 0x1F == 7 and entry[avcc + 12 + sps_len + 3] & 0x1F == 8


def test_bytes_are_deterministic_and_differ_between_tasks():
    """The same task always gets the same bytes; another task gets other bytes."""
    assert video_for("task_x") == video_for("task_x")
    assert video_for("task_x") != video_for("task_y")
