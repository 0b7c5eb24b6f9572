"""What a request to the web page may carry: the limits, the form's numbers, uploaded images.

:class:`Limits` bounds each request (bytes per upload, pixels per image, output size, steps,
jobs per client); :func:`read_form` parses the multipart form with its body cut off past a
byte limit, even without a ``Content-Length``; :func:`decode_upload` decodes an image in memory
with Pillow, its pixel count checked from the header before any decoding and decompression bombs
refused; :func:`form_number` reads a number field within bounds. Each failure is a
:class:`BadRequest` whose message the page shows.
"""
from __future__ import annotations

import dataclasses
import io
import math
import warnings
from typing import Any, Union

from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["Limits", "BadRequest", "read_form", "decode_upload", "form_number", "mib"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask: bytes per upload, pixels per decoded image, output long edge,
    steps, and jobs waiting or running per client."""
    upload_bytes: int = 20 * 2**20
    pixels: int = 25_000_000
    size: int = 1024
    steps: int = 2000
    jobs_per_client: int = 8


class BadRequest(HTTPException):
    """A request the page can fix: its message is shown there (400 unless told)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(status_code, message)


def megapixels(pixels: int) -> str:
    """``pixels`` in megapixels, three significant digits."""
    return f"{pixels / 1e6:.3g} megapixels"


def mib(nbytes: int) -> str:
    """``nbytes`` in MiB, three significant digits."""
    return f"{nbytes / 2**20:.3g} MiB"


def decode_upload(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """Decode an uploaded image in memory; its pixel count is checked from the header first.

    Raises :class:`BadRequest` naming ``what`` (e.g. "content image") for a file Pillow cannot
    read, a damaged one, or one over ``max_pixels`` (Pillow's decompression-bomb guard too).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadRequest(f"the {what} is {width}x{height} px ({megapixels(width * height)}); "
                                     f"the limit is {megapixels(max_pixels)}", 413)
                image.load()
                return ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise BadRequest(f"the {what} is not an image file Pillow can read (PNG, JPEG, WebP, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadRequest(f"the {what} is too large to decode safely ({exc})", 413) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"the {what} is damaged or truncated ({exc})") from None


def form_number(form: FormData, name: str, kind: type, default: Union[int, float],
            low: Union[int, float], high: Union[int, float]) -> Any:
    """The form field ``name`` as an ``int`` or ``float`` in ``[low, high]``; empty: ``default``."""
    text = form.get(name)
    if text is None or text == "":
        return default
    what = "a whole number" if kind is int else "a number"
    if not isinstance(text, str):
        raise BadRequest(f"{name} must be {what}, got a file")
    try:
        value = kind(text)
    except ValueError:
        raise BadRequest(f"{name} must be {what}, got {text[:40]!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise BadRequest(f"{name} must be between {low:g} and {high:g}, got {text[:40]}")
    return value


async def read_form(request: Request, limit: int) -> FormData:
    """The request's form (two files at most), refused with a 413 once its body passes ``limit`` bytes."""
    seen = 0
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BadRequest(f"the request is {mib(int(length))}; the limit is "
                         f"{mib(limit)} (two images)", 413)

    async def receive() -> dict:
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BadRequest(f"the request is over {mib(limit)} (two images)", 413)
        return message

    return await Request(request.scope, receive).form(max_files=2, max_fields=16,
                                                      max_part_size=4096)
