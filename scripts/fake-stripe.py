"""A local stand-in for the three Stripe endpoints the billing API calls, for the API fuzzing
run (scripts/fuzz-api.sh), so that schemathesis reaches the billing handlers' success paths.
It answers Stripe's documented response shapes and checks nothing but the method and path.
Usage: fake-stripe.py <port>
"""

import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ANSWERS = {
    "/v1/customers": lambda form: {"id": "cus_" + uuid.uuid4().hex[:14], "object": "customer"},
    "/v1/checkout/sessions": lambda form: {
        "id": "cs_test_" + uuid.uuid4().hex[:14],
        "object": "checkout.session",
        "mode": form.get("mode", [""])[0],
        "url": "https://checkout.stripe.com/c/pay/fake",
    },
    "/v1/billing_portal/sessions": lambda form: {
        "id": "bps_" + uuid.uuid4().hex[:14],
        "object": "billing_portal.session",
        "url": "https://billing.stripe.com/p/session/fake",
    },
}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        answer = ANSWERS.get(self.path)
        status, body = (200, answer(form)) if answer else (404, {"error": {"type": "invalid_request_error", "message": "no such path"}})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
