"""Cabine: the `cabine` command and the demo, the only place that composes the gateway and signaling."""
