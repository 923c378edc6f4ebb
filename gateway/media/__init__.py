"""Camera and microphone sources: av devices and synthetic test sources."""
