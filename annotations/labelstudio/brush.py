"""The pixels of Label Studio's mask regions: a brush region's RLE (``@thi.ng/rle-pack`` of its
layer's RGBA pixels, :func:`decode_rle`, :func:`encode_rle`) to and from masks and pixel runs,
and a bitmask region's PNG data URL (:func:`bitmask_pixel_runs`)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from annotations.fileio import first_line
from annotations.labelmap import PIL_ERRORS

# the fields of a ``@thi.ng/rle-pack`` stream: 32-bit value count, word size - 1 (5 bits), four
# run-length field sizes - 1 (4 bits each); Label Studio's frontend and converter use 8 / 3,4,8,16
_WORD = 8
_RUN_BITS = (3, 4, 8, 16)
_HEADER_BITS = 32 + 5 + 4 * 4
_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")


def decode_rle(rle: Sequence[int] | bytes | np.ndarray) -> np.ndarray:
    """A ``@thi.ng/rle-pack`` stream (Label Studio's ``value.rle``, a list of byte values) ->
    its values, ``(n,)`` unsigned integers of its word size (``uint8`` in Label Studio's).
    ``ValueError`` on a stream that is not one: a value outside 0..255, or a stream that ends
    before its count of values.

    The stream is a header (value count, word size, four run-length field sizes) and records:
    a flag bit, a 2-bit index into the field sizes, a run length - 1 in that many bits, then
    one word repeated (flag 1) or that many words (flag 0). The converter's ``decode_rle``
    reads it bit by bit in Python; this reads each field with ``int(bits, 2)`` from a bit
    string numpy makes and builds the values with one ``np.repeat``: the same values, in a
    seventh of the time at 4032x3024 (docs/annotate.md, the Label Studio section).
    """
    values, lengths = decode_runs(rle)
    return np.repeat(values, lengths)


def decode_runs(rle: Sequence[int] | bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ``@thi.ng/rle-pack`` stream's values as runs, ``(values, lengths)``, whose
    ``np.repeat`` is :func:`decode_rle`'s values (the same errors): a brush of a 3840x2160
    image is 33 M values, where its runs are a few per row of its object."""
    raw = np.frombuffer(rle, np.uint8) if isinstance(rle, bytes | bytearray) else np.asarray(rle)
    if raw.ndim != 1 or (
        raw.size and (raw.dtype.kind not in "iu" or raw.min() < 0 or raw.max() > 255)
    ):
        raise ValueError("an RLE is a list of byte values (0..255)")
    bits = np.unpackbits(raw.astype(np.uint8)).tobytes().translate(_TO_ASCII)
    if len(bits) < _HEADER_BITS:
        raise ValueError(f"an RLE of {raw.size} bytes is shorter than its header")
    num = int(bits[:32], 2)
    word = int(bits[32:37], 2) + 1
    sizes = [int(bits[37 + 4 * k : 41 + 4 * k], 2) + 1 for k in range(4)]
    values: list[int] = []
    lengths: list[int] = []
    i, p = 0, _HEADER_BITS

    def need(upto: int) -> None:
        if upto > len(bits):
            raise ValueError(f"the RLE ends after {i:,} of its {num:,} values")

    while i < num:
        need(p + 3)
        size = sizes[int(bits[p + 1 : p + 3], 2)]
        need(p + 3 + size)
        n = int(bits[p + 3 : p + 3 + size], 2) + 1
        repeat = bits[p] == 49  # b"1"
        p += 3 + size
        need(p + (1 if repeat else n) * word)
        if repeat:
            values.append(int(bits[p : p + word], 2))
            lengths.append(n)
            p += word
        else:  # n literal words (many: at once through numpy)
            if n < 16:
                values.extend(int(bits[q : q + word], 2) for q in range(p, p + n * word, word))
            else:
                digits = np.frombuffer(bits[p : p + n * word], np.uint8).reshape(n, word) - 48
                values.extend((digits @ (1 << np.arange(word - 1, -1, -1))).tolist())
            lengths.extend([1] * n)
            p += n * word
        i += n
    dtype = np.uint8 if word <= 8 else np.uint16 if word <= 16 else np.uint32
    # the last record may run past the count (a repeat, or literal words): cut the runs there
    counts = np.asarray(lengths, np.int64)
    begins = np.cumsum(counts) - counts
    keep = begins < num
    counts = counts[keep]
    if counts.size:
        counts[-1] = num - begins[keep][-1]
    return np.asarray(values, dtype)[keep], counts


def encode_rle(values: np.ndarray, lengths: np.ndarray) -> list[int]:
    """Runs of byte ``values`` (each ``lengths`` long) -> a ``@thi.ng/rle-pack`` stream as
    Label Studio stores it (word size 8, run fields of 3, 4, 8 and 16 bits), one repeat record
    per run (runs over 65,536 split)."""
    values = np.asarray(values, np.int64)
    lengths = np.asarray(lengths, np.int64)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError("brush values are bytes (0..255)")
    if lengths.size and lengths.min() < 1:
        raise ValueError("run lengths must be positive")
    cap = 1 << _RUN_BITS[-1]
    chunks = -(-lengths // cap)  # a run longer than a 16-bit field: full records, then the rest
    values = np.repeat(values, chunks)
    runs = np.full(int(chunks.sum()), cap, np.int64)
    runs[np.cumsum(chunks) - 1] = lengths - (chunks - 1) * cap
    total = int(lengths.sum())
    if total >= 1 << 32:
        raise ValueError(f"an RLE holds fewer than 2**32 values, not {total:,}")
    index = np.searchsorted(1 << np.asarray(_RUN_BITS[:3]), runs - 1, side="right")
    field = np.asarray(_RUN_BITS)[index]
    code = (1 << (2 + field + _WORD)) | (index << (field + _WORD)) | ((runs - 1) << _WORD) | values
    width = 3 + field + _WORD  # flag, index, run length, word
    bits = np.unpackbits(code.astype(">u4").view(np.uint8)).reshape(-1, 32)
    body = bits[np.arange(32) >= (32 - width)[:, None]]  # each record's own bits, in order
    header = f"{total:032b}{_WORD - 1:05b}" + "".join(f"{b - 1:04b}" for b in _RUN_BITS)
    stream = np.concatenate([np.frombuffer(header.encode(), np.uint8) - 48, body])
    return np.packbits(stream).tolist()  # zero bits pad the last byte


def mask_to_brush(mask: np.ndarray) -> list[int]:
    """``(H, W)`` bool mask -> a brush region's ``rle``: its RGBA pixels, all four channels 255
    inside and 0 outside, as Label Studio's brush exporter writes them (grey, alpha = coverage).
    Built from the mask's runs (each four values long), never the 4x larger pixel array."""
    flat = np.asarray(mask, bool).ravel()
    if flat.size == 0:
        return encode_rle(np.zeros(0), np.zeros(0))
    return _runs_to_brush(*mask_runs(flat), flat.size)


def window_to_brush(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> list[int]:
    """:func:`mask_to_brush` of an ``(height, width)`` mask that is zero outside the window
    ``crop (h, w)`` at row ``y0``, column ``x0``, without the full-size mask: the same stream."""
    crop = np.asarray(crop, bool)
    h, w = crop.shape
    if height * width == 0:
        return encode_rle(np.zeros(0), np.zeros(0))
    # the window's runs, cut at its rows' ends: rows that meet in the window do not in the
    # image, unless the window spans its width
    first, stop = _cut_at_rows(*mask_runs(crop.ravel()), w)
    rows, cols = np.divmod(first, w)
    starts = (y0 + rows) * width + x0 + cols
    stops = starts + (stop - first)
    joined = np.flatnonzero(starts[1:] == stops[:-1])  # a full-width window's rows meet
    return _runs_to_brush(np.delete(starts, joined + 1), np.delete(stops, joined), height * width)


def _cut_at_rows(first: np.ndarray, stop: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major runs ``first``..``stop`` of an image ``width`` wide, cut where a row ends."""
    row_first, row_last = first // width, (stop - 1) // width
    if not (row_last > row_first).any():
        return first, stop
    k = row_last - row_first + 1  # rows each run touches
    run = np.repeat(np.arange(first.size), k)
    row = row_first[run] + np.arange(run.size) - np.repeat(np.cumsum(k) - k, k)
    return np.maximum(first[run], row * width), np.minimum(stop[run], (row + 1) * width)


def mask_runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A flat bool array's runs of ones, ``(starts, stops)``. The array is padded with a zero
    at each end in int8: ``np.diff(..., prepend=0, append=0)`` padded it with int64 zeros, so it
    made two int64 copies, 16 bytes a pixel (a full-size bitmask's runs at 3840x2160: 130 MB)."""
    padded = np.zeros(flat.size + 2, np.int8)
    padded[1:-1] = flat
    edges = np.flatnonzero(np.diff(padded))
    return edges[::2], edges[1::2]


def _runs_to_brush(starts: np.ndarray, stops: np.ndarray, size: int) -> list[int]:
    """The brush stream of ``size`` pixels whose runs of ones are ``starts``..``stops``."""
    edges = np.stack([starts, stops], axis=1).ravel()
    bounds = np.concatenate(([0], edges, [size]))
    lengths = np.diff(bounds)
    values = np.tile([0, 255], starts.size + 1)[: lengths.size]
    keep = lengths > 0  # a mask that starts or ends with its class
    return encode_rle(values[keep], lengths[keep] * 4)


def brush_to_mask(rle: object, height: int, width: int) -> np.ndarray:
    """A brush region's ``rle`` -> ``(H, W)`` bool: the pixels of non-zero alpha.
    ``ValueError`` when it is no RLE of an image of that size."""
    mask = np.zeros((height, width), bool)
    paint_brush(mask, brush_pixel_runs(rle, height, width))
    return mask


def brush_pixel_runs(rle: object, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A brush region's ``rle`` -> its pixels of non-zero alpha as runs of the row-major
    image, ``(starts, stops)``, read from the stream's runs without its ``4 H W`` values.
    ``ValueError`` when it is no RLE of an image of that size."""
    if not isinstance(rle, list | bytes | bytearray):
        raise ValueError(f"'rle' must be a list of byte values, got {type(rle).__name__}")
    values, lengths = decode_runs(rle)
    if (total := int(lengths.sum())) != height * width * 4:
        raise ValueError(
            f"the brush RLE holds {total:,} values, not the {height * width * 4:,} of a "
            f"{width}x{height} RGBA image"
        )
    ends = np.cumsum(lengths)
    starts = ends - lengths
    on = values > 0
    # the alpha of pixel p is value 4 p + 3: a run [s, e) of non-zero values holds the alphas
    # of pixels ceil((s - 3) / 4) .. ceil((e - 3) / 4) - 1
    first, stop = -((3 - starts[on]) // 4), -((3 - ends[on]) // 4)
    keep = stop > first
    first, stop = first[keep], stop[keep]
    joined = np.flatnonzero(first[1:] == stop[:-1])  # runs that meet are one
    return np.delete(first, joined + 1), np.delete(stop, joined)


def paint_brush(mask: np.ndarray, runs: tuple[np.ndarray, np.ndarray]) -> None:
    """Set the ``(H, W)`` bool ``mask``'s pixels in ``runs`` (:func:`brush_pixel_runs`), inside
    the box they span only."""
    first, stop = runs
    if not first.size:
        return
    width = mask.shape[1]
    first, stop = _cut_at_rows(first, stop, width)
    rows = first // width
    start, end = first - rows * width, stop - rows * width  # columns, end excluded
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(start.min()), int(end.max())
    steps = np.zeros((y1 - y0, x1 - x0 + 1), np.int8)
    # +1 where a run starts, -1 past its end, summed along each row: in a row, starts are
    # distinct and so are ends (runs that meet were joined), so no step is lost
    steps[rows - y0, start - x0] += 1
    steps[rows - y0, end - x0] -= 1
    mask[y0:y1, x0:x1] |= np.cumsum(steps[:, :-1], axis=1, dtype=np.int8) > 0


def bitmask_to_mask(data_url: object, height: int, width: int) -> np.ndarray:
    """A bitmask region's ``imageDataURL`` (``data:image/png;base64,...``, the layer the
    frontend's ``BitmaskRegion`` draws black on transparent, at the image's size) ->
    ``(H, W)`` bool: the pixels of non-zero alpha, as it colours them. ``ValueError`` when it
    is no PNG data URL of an image of that size."""
    mask = np.zeros((height, width), bool)
    paint_brush(mask, bitmask_pixel_runs(data_url, height, width))
    return mask


def bitmask_pixel_runs(data_url: object, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bitmask_to_mask`'s pixels as runs of the row-major image, ``(starts, stops)``
    (:func:`paint_brush` takes them), read inside the box of the layer's non-zero alpha: its
    alpha band alone is taken from the decoded layer, and no full-size mask is made."""
    text = data_url if isinstance(data_url, str) else ""
    head, _, body = text.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        raise ValueError(f"'imageDataURL' must be a base64 data URL, got {data_url!r:.40}")

    def refused(e: BaseException) -> ValueError:  # binascii.Error is a ValueError
        return ValueError(f"'imageDataURL' is not a base64 image ({first_line(e)})")

    try:
        img = Image.open(io.BytesIO(base64.b64decode(body, validate=True)))
    except UnidentifiedImageError:  # Pillow's reason names the BytesIO object's address
        raise ValueError("'imageDataURL' is not a base64 image (not an image)") from None
    except PIL_ERRORS as e:  # a decompression bomb's header too
        raise refused(e) from None
    with img:  # the size from the header: a bitmask of another size is not decoded
        if img.size != (width, height):
            raise ValueError(
                f"the bitmask is {img.size[0]}x{img.size[1]}, not the {width}x{height} image"
            )
        try:  # the alpha as convert("RGBA") makes it (a palette's transparency, 255 for RGB)
            alpha = (img if img.mode == "RGBA" else img.convert("RGBA")).getchannel("A")
        except PIL_ERRORS as e:
            raise refused(e) from None
    box = alpha.getbbox()
    if box is None:  # nothing painted
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x0, y0, x1, y1 = box
    crop = np.asarray(alpha.crop(box)) > 0
    # the box's runs, cut at its rows' ends: rows that meet in the box do not in the image,
    # unless the box spans its width (paint_brush cuts them at rows again)
    first, stop = _cut_at_rows(*mask_runs(crop.ravel()), x1 - x0)
    rows, cols = np.divmod(first, x1 - x0)
    starts = (y0 + rows) * width + x0 + cols
    return starts, starts + (stop - first)
