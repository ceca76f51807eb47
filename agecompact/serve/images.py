"""Uploaded image bytes → a BGR array, with the pixel count checked from the header before decoding.

A few megabytes of PNG or JPEG can describe gigapixels; reading the size from the file header first
means such an upload is refused without ever being decompressed.
"""

from __future__ import annotations

import struct

import numpy as np

FORMATS = "JPEG, PNG, BMP or WebP"


class ImageRejected(Exception):
    """An upload that is not an acceptable image; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)`` from the header of a JPEG, PNG, BMP or WebP file; None otherwise."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return "bmp", abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            if i + 9 > len(data):
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return "jpeg", w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return "webp", w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        (bits,) = struct.unpack("<I", data[21:25])
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return "webp", w, h
    return None


def decode_upload(data: bytes, *, max_pixels: int) -> np.ndarray:
    """The upload as a BGR uint8 image, or :class:`ImageRejected` with a one-line reason."""
    import cv2

    if not data:
        raise ImageRejected(400, "the upload is empty")
    size = image_size(data)
    if size is None:
        raise ImageRejected(415, f"not a supported image: send a {FORMATS} file")
    fmt, w, h = size
    if w == 0 or h == 0:
        raise ImageRejected(400, f"the {fmt.upper()} header gives an empty image ({w}×{h})")
    if w * h > max_pixels:
        raise ImageRejected(413, f"image too large: {w}×{h} pixels (limit {max_pixels:,} pixels)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageRejected(400, f"the {fmt.upper()} data could not be decoded (damaged or truncated file?)")
    return image
