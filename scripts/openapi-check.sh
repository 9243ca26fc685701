#!/usr/bin/env bash
# Validates the hub API's OpenAPI document
# (crates/host/keyway-hub/src/api/openapi.json, served at /api/openapi.json)
# with an independent validator nobody on the project wrote:
# openapi-spec-validator from PyPI, pinned, in a venv under target/. It
# checks the document against the OpenAPI 3.1 schema and resolves every
# $ref.
# The check must be able to fail: the script also feeds two broken copies
# (a response without a description, a parameter without `in`, a dangling $ref) and requires each to
# be refused. That every route in the router appears in the document, and
# every documented route in the router, is a Rust test
# (cargo test -p keyway-hub --test api every_route_is_in_the_openapi_document_and_back).
#
#   scripts/openapi-check.sh     (no arguments)
#
# Needs: python3 with venv, network to PyPI on the first run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOC="$ROOT/crates/host/keyway-hub/src/api/openapi.json"
VENV="$ROOT/target/openapi-check-venv"
WORK="$ROOT/target/openapi-check"
# Pinned: the versions this script was written and checked against.
PINS=(openapi-spec-validator==0.9.0)

[[ $# == 0 ]] || { echo "usage: $0" >&2; exit 2; }
have="$("$VENV/bin/python" -m pip show openapi-spec-validator 2>/dev/null || true)"
if [[ "$have" != *"Version: ${PINS[0]#*==}"* ]]; then
  echo "==> creating $VENV with ${PINS[*]}" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
fi
mkdir -p "$WORK"

"$VENV/bin/python" - "$DOC" "$WORK" <<'PY'
import json, sys, copy
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from openapi_spec_validator import OpenAPIV31SpecValidator

doc_path, work = sys.argv[1], sys.argv[2]
doc = json.load(open(doc_path))
assert doc["openapi"].startswith("3.1"), "not an OpenAPI 3.1 document"
validate(doc, cls=OpenAPIV31SpecValidator)
ops = sum(1 for p in doc["paths"].values() for m in p if m in ("get", "put", "post", "delete", "patch"))
print(f"openapi-check: {doc_path}: valid OpenAPI {doc['openapi']} ({len(doc['paths'])} paths, {ops} operations, {len(doc['components']['schemas'])} schemas)")

broken = []
b = copy.deepcopy(doc); del b["paths"]["/api/locks"]["get"]["responses"]["200"]["description"]; broken.append(("a response without a description", b))
b = copy.deepcopy(doc); b["paths"]["/api/locks/{id}"]["get"]["parameters"] = [{"name": "id"}]; broken.append(("a parameter without `in`", b))
b = copy.deepcopy(doc); b["paths"]["/api/locks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/NoSuchSchema"}; broken.append(("a dangling $ref", b))
for what, b in broken:
    try:
        validate(b, cls=OpenAPIV31SpecValidator)
    except Exception as e:
        print(f"openapi-check: refused as it must be: {what} ({type(e).__name__})")
        continue
    print(f"openapi-check: FAILED: the validator accepted {what}", file=sys.stderr)
    sys.exit(1)
print(f"openapi-check: 1 document valid, {len(broken)} broken copies refused")
PY
