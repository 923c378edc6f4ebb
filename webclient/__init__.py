"""The static web pages (professional's console, cabin screen, operator page), shipped as package data."""

from pathlib import Path
from typing import Final

WEBCLIENT_DIR: Final = Path(__file__).resolve().parent
"""Where the pages are, in a checkout or in an installed wheel alike."""
