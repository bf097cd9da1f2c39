"""kubesft operator: turns SFTJob resources into training Jobs and keeps their status true."""

__version__ = "0.1.0"
