"""A webhook receiver for tests/it/webhooks.rs: verifies every delivery with the Standard
Webhooks reference library (PyPI `standardwebhooks`) and records what it accepted, deduped
by `webhook-id` (as a receiver must: delivery is at least once).

    python3 webhook_receiver.py PORT STATE_FILE SECRET

POST /hook             a delivery: 2xx when verified (and the set status is 2xx), else 4xx/5xx
POST /_control         {"secret": "whsec_...", "status": 503}: verify with another secret;
                       answer every delivery 5xx (a failing server), or verified ones 2xx
                       or 3xx (a redirect to /followed, which counts the requests it gets)
GET  /_state           {"accepted": [{"id", "body"}...], "received": [id...], "rejected": n}

The state is kept in STATE_FILE, so a receiver stopped and started again keeps it.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT = int(sys.argv[1])
STATE_FILE = sys.argv[2]
LOCK = Lock()
SETTINGS = {"secret": sys.argv[3], "status": 204}


def load():
    if os.path.exists(STATE_FILE):
        with open(STATE_FILE) as f:
            return json.load(f)
    return {"accepted": [], "received": [], "rejected": 0, "errors": []}


STATE = load()


def save():
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, STATE_FILE)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("location", "/followed")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            self.answer(200, STATE)

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/followed":
            with LOCK:
                STATE["followed"] = STATE.get("followed", 0) + 1
                save()
            return self.answer(204)
        if self.path == "/_control":
            with LOCK:
                SETTINGS.update(json.loads(data))
            return self.answer(200, SETTINGS)
        with LOCK:
            if SETTINGS["status"] >= 500:
                # A failing server: it answers before looking at the delivery.
                return self.answer(SETTINGS["status"])
            try:
                body = Webhook(SETTINGS["secret"]).verify(data, dict(self.headers))
            except WebhookVerificationError as e:
                STATE["rejected"] += 1
                STATE["errors"].append(str(e))
                save()
                return self.answer(401, {"error": str(e)})
            msg_id = self.headers["webhook-id"]
            status = SETTINGS["status"]
            if status < 300:
                STATE["received"].append(msg_id)
                if all(a["id"] != msg_id for a in STATE["accepted"]):
                    STATE["accepted"].append({"id": msg_id, "body": body})
                save()
        self.answer(status)


ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("listening", PORT, flush=True)
server.serve_forever()
