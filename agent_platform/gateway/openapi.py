"""The gateway's OpenAPI 3.1 document, as committed in `docs/openapi.json`.

    python -m agent_platform.gateway.openapi docs/openapi.json   # regenerate after an API change

A test fails when the committed file differs from what the code generates.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    """Generated without starting anything (the lifespan, which loads models, does not run)."""
    from agent_platform.gateway.app import create_app
    from agent_platform.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        return create_app(Settings(home=Path(home))).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT_PATH
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
