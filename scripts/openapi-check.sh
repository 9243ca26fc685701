#!/usr/bin/env bash
# Validates the hub API's OpenAPI document
# (crates/host/keyway-hub/src/api/openapi.json, served at /api/openapi.json)
# with an independent validator nobody on the project wrote:
# openapi-spec-validator from PyPI, pinned, in a venv under target/. It
# checks the document against the OpenAPI 3.1 schema and resolves every
# $ref.
# Then every JSON response the API tests saw (`cargo test -p keyway-hub
# --test api` writes them to target/tmp/openapi-samples.json) is validated
# with jsonschema (the validator's own dependency) against the document's
# schema for its route and status, and an error's code must be one the
# document lists for that status: the document describes what the API
# returns, not what it was meant to.
# The check must be able to fail: the script also feeds two broken copies
# (a response without a description, a parameter without `in`, a dangling $ref) and requires each to
# be refused. That every route in the router appears in the document, and
# every documented route in the router, is a Rust test
# (cargo test -p keyway-hub --test api every_route_is_in_the_openapi_document_and_back).
#
#   cargo test -p keyway-hub --test api && scripts/openapi-check.sh
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

# The document must describe what the API returns: every JSON response the
# API tests saw (cargo test -p keyway-hub --test api writes them) is
# validated against the document's schema for its route and status.
import os, re
from jsonschema import Draft202012Validator
samples_path = os.path.join(os.path.dirname(os.path.dirname(work)), "target", "tmp", "openapi-samples.json")
samples_path = os.environ.get("KEYWAY_OPENAPI_SAMPLES", samples_path)
if not os.path.exists(samples_path):
    print(f"openapi-check: no response samples at {samples_path}: run `cargo test -p keyway-hub --test api` first to check responses too", file=sys.stderr)
    sys.exit(0)
samples = json.load(open(samples_path))
templates = [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"), p) for p in doc["paths"]]
bad = 0
for smp in samples:
    path = smp["uri"].split("?")[0]
    tpl = [p for rx, p in templates if rx.match(path)]
    # The most specific template (fewest parameters) wins, as in the router.
    tpl.sort(key=lambda p: p.count("{"))
    if not tpl:
        if smp["body"].get("error", {}).get("code") == "not_found":
            continue  # a route that does not exist, on purpose
        print(f"openapi-check: FAILED: {smp['method']} {path}: no route in the document", file=sys.stderr); bad += 1; continue
    op = doc["paths"][tpl[0]].get(smp["method"])
    if op is None:
        if smp["body"].get("error", {}).get("code") == "method_not_allowed":
            continue
        print(f"openapi-check: FAILED: {smp['method']} {tpl[0]}: no such operation", file=sys.stderr); bad += 1; continue
    resp = op["responses"].get(str(smp["status"]))
    if resp is None:
        print(f"openapi-check: FAILED: {smp['method']} {tpl[0]}: status {smp['status']} is not documented", file=sys.stderr); bad += 1; continue
    schema = resp.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        print(f"openapi-check: FAILED: {smp['method']} {tpl[0]} {smp['status']}: JSON body but no JSON schema", file=sys.stderr); bad += 1; continue
    root = {"components": doc["components"], **schema}
    errs = sorted(Draft202012Validator(root).iter_errors(smp["body"]), key=lambda e: list(e.path))
    if errs:
        print(f"openapi-check: FAILED: {smp['method']} {tpl[0]} {smp['status']}: {errs[0].message} at {list(errs[0].path)}", file=sys.stderr); bad += 1
        continue
    if smp["status"] >= 400:
        code = smp["body"]["error"]["code"]
        if code not in resp["description"]:
            print(f"openapi-check: FAILED: {smp['method']} {tpl[0]} {smp['status']}: code {code} is not listed for that status", file=sys.stderr); bad += 1
print(f"openapi-check: {len(samples)} response samples from the API tests checked against the document, {bad} mismatches")
sys.exit(1 if bad else 0)
PY
