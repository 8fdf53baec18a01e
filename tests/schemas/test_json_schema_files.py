"""The committed JSON Schema files are the models' schemas, byte for byte."""

from callqual.schemas.export import JSON_DIR, render, schemas


def test_every_schema_file_matches_its_model() -> None:
    expected = schemas()
    for name, schema in expected.items():
        path = JSON_DIR / name
        assert path.exists(), f"{name} missing: run python -m callqual.schemas.export"
        assert path.read_text(encoding="utf-8") == render(schema), f"{name} is stale"


def test_no_orphan_schema_files() -> None:
    on_disk = {p.name for p in JSON_DIR.glob("*.json")}
    assert on_disk == set(schemas())
