"""The laboratory's one error root."""

from __future__ import annotations


class NetlabError(RuntimeError):
    """A laboratory step failed: a command refused, a namespace missing, a server that never answered."""
