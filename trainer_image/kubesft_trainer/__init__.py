"""kubesft trainer: declarative TRL SFT driven by the config an SFTJob renders.

Importing this package, or its ``config`` module, never imports torch, so the operator can
share the config model without pulling the training stack.
"""

__version__ = "0.1.0"
