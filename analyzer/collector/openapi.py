"""The collector's OpenAPI 3.1 document (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

import msgspec

from ixmeter.core import heartbeat
from ixmeter.core.wire import WireBody

_SIGNED: list[dict[str, list[str]]] = [{"probeSignature": []}]
_ERROR = {"type": "object", "properties": {
    "error": {"type": "string"}, "field": {"type": "string"}, "reason": {"type": "string"}}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_AUTH_ERRORS = {"401": _err("unknown probe, missing or malformed header, bad signature, "
                            "stale timestamp or replayed nonce (answered before the body is "
                            "read, except a body that does not match its signed digest)"),
                "403": _err("the signed probe may not act for this probe or these results")}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "ixmeter collector", "version": version,
                 "description": "Signed result batches from probes (docs/collector.md)."},
        "paths": {
            "/v1/batches": {"post": {
                "summary": "Ingest a batch exactly once (acknowledged after commit)",
                "security": _SIGNED,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Batch"}}}},
                "responses": {"200": {"description": "committed (or already stored)",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Receipt"}}}},
                              "400": _err("body is not a JSON object"),
                              **_AUTH_ERRORS,
                              "413": _err("body larger than the configured limit"),
                              "422": _err("a field is invalid; 'field' names it"),
                              "503": _err("the store could not commit; retry later")}}},
            "/v1/probes/{probe_id}/heartbeat": {"post": {
                "summary": "Report liveness, version and spool depth", "security": _SIGNED,
                "parameters": [_PROBE_PARAM],
                "requestBody": {"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Heartbeat"}}}},
                "responses": {"200": {"description": "recorded"},
                              "400": _err("body is not one JSON object"),
                              "413": _err(f"body over {heartbeat.MAX_BODY} bytes"),
                              "422": _err("a field is invalid (an unknown counter name, a "
                                          "value that is not an integer >= 0); 'field' names "
                                          "it"), **_AUTH_ERRORS}}},
            "/v1/probes/{probe_id}/inventory": {"get": {
                "summary": "The probe's plan: its entry, specs and targets, and the "
                           "fingerprints of its accepted keys (signed GET, empty body; the "
                           "answer is signed in X-Ixmeter-Plan-Signature, ixmeter.core.plan)",
                "security": _SIGNED, "parameters": [_PROBE_PARAM],
                "responses": {"200": {"description": "{probe_id, issued_at, keys, plan}"},
                              "404": _err("no inventory or probe not in it"), **_AUTH_ERRORS}}},
            "/healthz": {"get": {"summary": "Liveness and the hash-chain head",
                                 "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition"}}}},
        },
        "components": {
            "securitySchemes": {"probeSignature": {
                "type": "apiKey", "in": "header", "name": "X-Ixmeter-Signature",
                "description": "HMAC-SHA256 (RFC 2104) with the probe's key over 'METHOD\\nPATH\\n"
                               "timestamp\\nnonce\\nsha256(body)', 64 lower-case hex digits; "
                               "also send X-Ixmeter-Probe, X-Ixmeter-Timestamp (Unix seconds, "
                               "plain decimal), X-Ixmeter-Nonce (16 to 64 lower-case hex "
                               "digits) and X-Ixmeter-Content-SHA256 (the body's SHA-256, "
                               "lower-case hex). All but the body is checked before the body "
                               "is read."}},
            "schemas": {
                "Error": _ERROR,
                "Batch": {"$ref": "#/components/schemas/WireBody",
                          "description": "the batch body (columnar; docs/collector.md). JSON "
                                         "types from ixmeter.core.wire's Structs; value rules "
                                         "(ranges, strings, per result): ixmeter.core.rules"},
                **_BODY_SCHEMAS,
                "Receipt": {"type": "object", "properties": {
                    "accepted": {"type": "integer"}, "duplicate": {"type": "boolean"},
                    "chain_head": {"type": "string"}}},
                "Heartbeat": _HEARTBEAT,
            },
        },
    }


# The body's schema, generated from the one definition (ixmeter.core.wire's msgspec Structs).
_BODY_SCHEMAS = msgspec.json.schema_components(
    [WireBody], ref_template="#/components/schemas/{name}")[1]
_PROBE_PARAM = {"name": "probe_id", "in": "path", "required": True, "schema": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 0, "maximum": heartbeat.MAX_VALUE}
_HEARTBEAT = {
    "type": "object", "additionalProperties": False,
    "description": "ixmeter.core.heartbeat: every key optional; counter names from a fixed set",
    "properties": {
        "version": {"type": "string", "minLength": 1, "maxLength": heartbeat.MAX_VERSION},
        "spool_depth": _COUNT,
        "counters": {"type": "object", "additionalProperties": False,
                     "properties": {c.name: {**_COUNT, "description": c.help}
                                    for c in heartbeat.COUNTERS}},
    },
}
