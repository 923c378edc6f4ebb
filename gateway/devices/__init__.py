"""Bluetooth LE medical devices: pure decoders, the reading model, the bleak device manager, emulators."""
