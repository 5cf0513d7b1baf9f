"""Validates FHIR Bundles (JSON files given as arguments) against the FHIR R4 (4.0.1)
models of the `fhir.resources` package (6.4.0 is R4). Exits 1 naming the first invalid
resource. Used by the end-to-end tests; CI installs the package into target/ci-tools."""

import json
import sys

import fhir.resources
from fhir.resources.bundle import Bundle

if fhir.resources.__fhir_version__ != "4.0.1":
    sys.exit(f"fhir.resources models FHIR {fhir.resources.__fhir_version__}, not R4 4.0.1")

total = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        bundle = Bundle.parse_obj(data)
    except Exception as e:  # pydantic's ValidationError names the field
        sys.exit(f"{path}: not valid FHIR R4: {e}")
    total += len(bundle.entry or [])
print(f"valid FHIR R4: {total} resources")
