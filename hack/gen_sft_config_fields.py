"""Regenerates api/kubesft_api/sft_config_fields.py from the installed TRL."""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import trl
from trl import SFTConfig

TARGET = pathlib.Path(__file__).resolve().parents[1] / "api/kubesft_api/sft_config_fields.py"
BEGIN = "# BEGIN GENERATED FIELDS"
END = "# END GENERATED FIELDS"


def render() -> str:
    names = sorted(f.name for f in dataclasses.fields(SFTConfig) if f.init)
    body = "\n".join(f'        "{name}",' for name in names)
    return (
        f"{BEGIN} (TRL {trl.__version__}; make crds regenerates)\n"
        f'SFT_CONFIG_TRL_VERSION = "{trl.__version__}"\n'
        "SFT_CONFIG_FIELDS: frozenset[str] = frozenset(\n    (\n"
        f"{body}\n    )\n)\n{END}"
    )


def main() -> int:
    text = TARGET.read_text()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render() + text[stop:]
    if "--check" in sys.argv:
        if updated != text:
            print(f"{TARGET} is stale for TRL {trl.__version__}; run make crds", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
