#!/usr/bin/env python3
"""Generates tests/schema/verdicts.json from tests/schema/corpus/*.json.

Run once after changing the corpus or the schemas (development only; the C
test reads the committed verdicts and needs no Python):

    /work/venv/bin/python tests/schema/gen_verdicts.py

Each corpus file is {"description", "schema", "doc"} where "schema" is either
the name of a file under schemas/ ("messages/inference.run.json") or an
inline schema. The reference is Python's jsonschema Draft202012Validator with
every file under schemas/ in its registry. For each document the verdicts
record whether it is valid and every instance path an error was reported at
(including errors inside anyOf/oneOf branches), written the way the C
validator writes paths ("data.lora.adapters[1].weight").
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = pathlib.Path(__file__).resolve().parent
SCHEMAS = HERE.parent.parent / "schemas"


def load_schemas():
    by_name = {}
    resources = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        name = path.relative_to(SCHEMAS).as_posix()
        by_name[name] = schema
        resources.append((schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)))
    return by_name, Registry().with_resources(resources)


def c_path(error):
    out = "data"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def all_paths(errors):
    paths = set()
    for e in errors:
        paths.add(c_path(e))
        paths |= all_paths(e.context or [])
    return paths


def main():
    by_name, registry = load_schemas()
    verdicts = {}
    for path in sorted((HERE / "corpus").glob("*.json")):
        case = json.loads(path.read_text())
        schema = case["schema"]
        if isinstance(schema, str):
            schema = by_name[schema]
        else:
            Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema, registry=registry)
        errors = list(validator.iter_errors(case["doc"]))
        verdicts[path.name] = {"valid": not errors, "paths": sorted(all_paths(errors))}
    out = HERE / "verdicts.json"
    out.write_text(json.dumps(verdicts, indent=1, sort_keys=True) + "\n")
    print(f"{len(verdicts)} verdicts -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
