"""A still of the cabin's camera, at the size the camera gives, as JPEG bytes in memory (a document held up to it).

The frame comes from the call's camera relay, the one the citizen's own image is drawn from: the citizen aims the page
with that image, and the still is the next whole frame, never a scaled copy.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Final

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from gateway.errors import GatewayError

PHOTO_TIMEOUT: Final = 5.0
# libavcodec's JPEG quantiser: 2 is the finest, 31 the coarsest; 3 keeps small print legible at a third of 2's size.
QUALITY: Final = 3


class PhotoError(GatewayError, RuntimeError):
    """No still could be taken (no camera, or no frame in time); the message says which, for both screens."""


def encode_jpeg(frame: VideoFrame, *, quality: int = QUALITY) -> bytes:
    """One frame as a baseline JPEG at its own size."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 30)
    codec.options = {"qmin": str(quality), "qmax": str(quality)}
    packets = [*codec.encode(frame.reformat(format="yuvj420p")), *codec.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


async def take_photo(track: MediaStreamTrack, *, timeout: float = PHOTO_TIMEOUT) -> bytes:
    """The next frame of `track` as JPEG; the track is stopped afterwards (it is the caller's subscription).

    Raises:
        PhotoError: the camera gave no frame within `timeout` or has ended.
    """
    try:
        async with asyncio.timeout(timeout):
            frame = await track.recv()
    except TimeoutError:
        raise PhotoError(f"the camera gave no picture within {timeout:g} s") from None
    except MediaStreamError:
        raise PhotoError("the camera has stopped") from None
    finally:
        track.stop()
    if not isinstance(frame, VideoFrame):
        raise PhotoError("the camera gave no picture")
    # Encoding a large frame takes tens of milliseconds: off the event loop, where the call's media runs.
    return await asyncio.to_thread(encode_jpeg, frame)
