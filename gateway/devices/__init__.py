"""Bluetooth LE medical devices: pure decoders, the reading model, FHIR, the bleak device manager."""
