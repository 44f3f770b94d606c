"""Keep the structure of Nuki's official OpenAPI document inside the repository, for the tests.

Usage::

    python scripts/extract_official_spec.py PATH/TO/nuki-web-api-3.9.0.openapi.json

writes ``tests/reference/nuki-web-api-3.9.0.structure.json``: the official document's paths,
methods, parameters, request bodies, responses, security schemes and schemas, with their types,
formats, enums, limits and required fields, as they are (defects included); the prose
(``description``, ``summary``, ``example``, terms and contact) is left out. Response objects keep
an empty ``description``, since OpenAPI 3.0 requires one. The copy names its origin under
``x-origin``: the API and version, and the SHA-256 of the source file it was made from.

Run it again when Nuki publishes a new version; ``tests/official_schemas.py`` checks at load time
that the two known defects it patches are still in the copy.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "tests" / "reference"
OUT_NAME = "nuki-web-api-{version}.structure.json"

PROSE = {"description", "summary", "example", "examples", "termsOfService", "contact", "license"}
# maps whose keys are names chosen by the document, not OpenAPI keywords
NAMED_MAPS = {"properties", "paths", "schemas", "responses", "requestBodies", "securitySchemes"}


def strip(node: Any, parent: str | None = None) -> Any:
    """``node`` without prose keywords; the keys of named maps are kept whatever they are."""
    if isinstance(node, list):
        return [strip(item, parent) for item in node]
    if not isinstance(node, dict):
        return node
    if parent == "responses":
        return {status: _response(value) for status, value in node.items()}
    if parent in NAMED_MAPS:
        return {name: strip(value) for name, value in node.items()}
    if parent == "scopes":  # scope name -> prose
        return dict.fromkeys(node, "")
    return {key: strip(value, key) for key, value in node.items() if key not in PROSE}


def _response(node: Any) -> Any:
    stripped = strip(node)
    if isinstance(stripped, dict) and "$ref" not in stripped:
        stripped = {"description": "", **stripped}
    return stripped


def structure(source: Path) -> dict[str, Any]:
    raw = source.read_bytes()
    document = json.loads(raw)
    out = strip(document)
    out["x-origin"] = {
        "api": document["info"]["title"],
        "version": document["info"]["version"],
        "source": source.name,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "made by": "scripts/extract_official_spec.py (prose left out; structure as published)",
    }
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = structure(Path(argv[0]))
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / OUT_NAME.format(version=out["x-origin"]["version"])
    target.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(target.relative_to(OUT.parents[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
