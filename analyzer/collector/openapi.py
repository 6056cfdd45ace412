"""The collector's OpenAPI 3.1 document (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from ixmeter import heartbeat
from ixmeter.wire import MAX_RESULTS

_SIGNED: list[dict[str, list[str]]] = [{"probeSignature": []}]
_ERROR = {"type": "object", "properties": {
    "error": {"type": "string"}, "field": {"type": "string"}, "reason": {"type": "string"}}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_AUTH_ERRORS = {"401": _err("unknown probe, bad signature, stale timestamp or replayed nonce"),
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
                           "answer is signed in X-Ixmeter-Plan-Signature, ixmeter.plan)",
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
                               "timestamp\\nnonce\\nsha256(body)'; also send X-Ixmeter-Probe, "
                               "X-Ixmeter-Timestamp (Unix s) and X-Ixmeter-Nonce."}},
            "schemas": {
                "Error": _ERROR,
                "Batch": {"oneOf": [{"$ref": "#/components/schemas/BatchV2"},
                                    {"$ref": "#/components/schemas/BatchV1"}],
                          "description": "wire v2 (columnar: what probes send) or v1 (a record "
                                         "per result, accepted for ever); docs/collector.md"},
                "BatchV1": {"type": "object", "required": ["v", "probe_id", "batch_id", "results"],
                            "properties": {"v": {"const": 1}, "probe_id": _NAME,
                                           "batch_id": _NAME,
                                           "results": {"type": "array", "maxItems": MAX_RESULTS,
                                                       "items": {
                                               "type": "object",
                                               "description": "ixmeter.record.Result.to_dict()"}}}},
                "BatchV2": {"type": "object", "additionalProperties": False,
                            "required": ["v", "probe_id", "batch_id", "streams"],
                            "properties": {"v": {"const": 2}, "probe_id": _NAME,
                                           "batch_id": _NAME,
                                           "streams": {"type": "array",
                                                       "items": {"$ref":
                                                                 "#/components/schemas/Stream"}}},
                            "description": f"at most {MAX_RESULTS:,} results (sum of n)"},
                "Stream": _STREAM,
                "Receipt": {"type": "object", "properties": {
                    "accepted": {"type": "integer"}, "duplicate": {"type": "boolean"},
                    "chain_head": {"type": "string"}}},
                "Heartbeat": _HEARTBEAT,
            },
        },
    }


_NAME = {"type": "string", "minLength": 1}
_INT = {"type": "integer"}


def _column(item: dict[str, Any], description: str) -> dict[str, Any]:
    """A dense v2 column: a list of n values, or one value standing for all n."""
    return {"oneOf": [item, {"type": "array", "items": item}], "description": description}


_NULLABLE_INT = {"type": ["integer", "null"]}
_STREAM = {
    "type": "object", "additionalProperties": False,
    "required": ["method", "src_site", "src_carrier", "dst_site", "dst_carrier", "src_addr",
                 "dst_addr", "type_p", "n", "idx", "seq", "sent_at_ns", "tmax_ns", "status",
                 "ts_source"],
    "description": "results sharing probe, method, ends, addresses, Type-P and session; two "
                   "streams of a batch differ in one of these",
    "properties": {
        "method": {"enum": ["icmp", "stamp", "traceroute"]},
        **{k: _NAME for k in ("src_site", "src_carrier", "dst_site", "dst_carrier", "src_addr",
                              "dst_addr")},
        "session": {"type": "string", "default": ""},
        "type_p": {"type": "object", "required": ["protocol", "ip_version", "size"],
                   "properties": {"protocol": {"enum": ["icmp", "udp", "tcp"]},
                                  "ip_version": {"enum": [4, 6]}, "size": _INT,
                                  "dscp": {"type": "integer", "minimum": 0, "maximum": 63},
                                  "dst_port": _NULLABLE_INT}},
        "n": {"type": "integer", "minimum": 1},
        "idx": _column(_INT, "position in the batch; one integer i: the run i..i+n-1"),
        "seq": _column({"type": "integer", "minimum": 0}, "probe sequence number"),
        "sent_at_ns": _column(_INT, "send time, Unix ns"),
        "tmax_ns": _column({"type": "integer", "minimum": 1}, "loss threshold Tmax, ns"),
        "status": _column({"enum": [0, 1, 2]}, "0 received, 1 lost, 2 error"),
        "ts_source": _column({"enum": [0, 1, 2, 3]}, "0 hardware, 1 kernel, 2 user, 3 imported"),
        **{k: _column(_NULLABLE_INT, "ns, or null") for k in
           ("rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns")},
        "reply_ttl": _column(_NULLABLE_INT, "TTL / hop limit of the reply"),
        **{k: _column({"type": ["boolean", "null"]}, "clock synchronised")
           for k in ("src_synced", "dst_synced")},
        "error": _column({"enum": [0, 1, 2, 3, 4, 5, None]}, "ixmeter.wire.ERROR_CODES"),
        "dup": _column({"type": "integer", "minimum": 0}, "duplicate replies"),
        "v": _column(_INT, "record schema version"),
        "error_detail": {"type": "array", "description": "[[k, text], ...] for results with one"},
        "hops": {"type": "array",
                 "description": "[[k, [[ttl, addr|null, rtt_ns|null], ...]], ...]"},
    },
}
_PROBE_PARAM = {"name": "probe_id", "in": "path", "required": True, "schema": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 0, "maximum": heartbeat.MAX_VALUE}
_HEARTBEAT = {
    "type": "object", "additionalProperties": False,
    "description": "ixmeter.heartbeat: every key optional; counter names from a fixed set",
    "properties": {
        "version": {"type": "string", "minLength": 1, "maxLength": heartbeat.MAX_VERSION},
        "spool_depth": _COUNT,
        "counters": {"type": "object", "additionalProperties": False,
                     "properties": {c.name: {**_COUNT, "description": c.help}
                                    for c in heartbeat.COUNTERS}},
    },
}
