"""The cabin microphone as the professional hears it: each frame through the call's VoiceProcessor."""

from __future__ import annotations

from aiortc import MediaStreamTrack
from av import AudioFrame

from gateway.sound.processor import VoiceProcessor


class ProcessedMicrophone(MediaStreamTrack):
    """Reads `source` and returns its frames processed; stopping it leaves the source to its owner."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, processor: VoiceProcessor) -> None:
        super().__init__()
        self.source = source
        self.processor = processor

    async def recv(self) -> AudioFrame:
        """Raises: MediaStreamError: the source ended."""
        frame = await self.source.recv()
        assert isinstance(frame, AudioFrame)
        return self.processor.near_end(frame)
