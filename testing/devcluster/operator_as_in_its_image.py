"""Run the operator as its image does, where the official ``kubernetes`` client is not installed.

The development virtualenv has the client for the tests. Kopf imports it, and logs in through
it, whenever it can, so here it is hidden: Kopf logs in and the operator's memory is as in the
image. ``python testing/devcluster/operator_as_in_its_image.py`` takes the place of ``python -m kubesft_operator``.
"""

from __future__ import annotations

import runpy
import sys

IMAGE_LACKS = ("kubernetes",)


def hide_what_the_image_lacks() -> None:
    for name in IMAGE_LACKS:
        sys.modules[name] = None  # type: ignore[assignment]  # makes ``import name`` fail


if __name__ == "__main__":
    hide_what_the_image_lacks()
    runpy.run_module("kubesft_operator", run_name="__main__", alter_sys=True)
