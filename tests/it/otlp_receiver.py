#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for tests/it/otel.rs.

Listens on 127.0.0.1 (a free port), prints `port <n>` on stdout, and for every
`POST /v1/traces` with `Content-Type: application/x-protobuf` decodes the body with the
official `opentelemetry-proto` package (ExportTraceServiceRequest) and appends one JSON line
per span to the file named by argv[1]:
{"service": ..., "trace_id": hex, "span_id": hex, "parent_span_id": hex or "",
 "name": ..., "kind": "SPAN_KIND_…", "attributes": {key: value}}.
Anything else is answered 404 (path) or 415 (content type); an undecodable body is 400.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

OUT = sys.argv[1]
LOCK = threading.Lock()


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            return self.answer(404, b"")
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.answer(415, b"")
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:  # noqa: BLE001 - any decoding failure is the client's
            return self.answer(400, b"")
        lines = []
        for resource_spans in request.resource_spans:
            service = attributes(resource_spans.resource.attributes).get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "service": service,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                        "attributes": attributes(span.attributes),
                    }))
        with LOCK, open(OUT, "a", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.answer(200, response)

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
