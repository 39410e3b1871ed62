"""Write the JSON Schema of the knowledge file's JSON format, from its pydantic model, to
``docs/knowledge.schema.json`` (``tests/engines/test_knowledge_formats.py`` checks that the
committed file matches the model).

    python scripts/knowledge_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

from voxline.engines.knowledge import KnowledgeFile

SCHEMA = Path(__file__).parents[1] / "docs" / "knowledge.schema.json"


def schema_text() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **KnowledgeFile.model_json_schema(),
    }
    return json.dumps(schema, indent=2) + "\n"


if __name__ == "__main__":
    SCHEMA.write_text(schema_text())
    print(f"wrote {SCHEMA.name}")
