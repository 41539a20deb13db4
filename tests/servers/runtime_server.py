#!/usr/bin/env python3
"""A local AWS Lambda Runtime API (2018-06-01) server for tests, recording every answer.

  GET  /2018-06-01/runtime/invocation/next             blocks until an event is queued; headers
                                                       Lambda-Runtime-Aws-Request-Id, -Deadline-Ms,
                                                       -Invoked-Function-Arn, -Trace-Id
  POST /2018-06-01/runtime/invocation/ID/response      202; 413 over 6 MB; 400 for an id that
                                                       is not the invocation in progress
  POST /2018-06-01/runtime/invocation/ID/error         202 (Lambda-Runtime-Function-Error-Type)
  POST /2018-06-01/runtime/init/error                  202
  POST /_test/invoke {"event": …, "timeout_ms": N}     queues an invocation, returns its id
  POST /_test/fail_posts {"count": N}                  the next N answers get 503
  GET  /_test/results                                  what came back, by request id

Run alone: runtime_server.py [--port N]; it prints "port N".
"""
import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler

from serving import LocalServer, serve

MAX_PAYLOAD = 6 * 1024 * 1024
PREFIX = "/2018-06-01/runtime"


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.queue = queue.Queue()
        self.current = None   # the request id handed out and not answered yet
        self.results = {}     # request id -> {"kind", "body", "error_type", "at"}
        self.init_errors = []
        self.nexts = 0
        self.first_next_at = None  # epoch seconds of the first invocation/next
        self.fail_posts = 0        # answers to refuse with 503 before accepting one
        self.posts = []            # every answer or error posted: (request id, kind, status)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj=None, headers=None):
        body = json.dumps(obj if obj is not None else {}).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        if self.path == PREFIX + "/invocation/next":
            with st.lock:
                st.nexts += 1
                if st.first_next_at is None:
                    st.first_next_at = time.time()
            rid, event, deadline = st.queue.get()
            with st.lock:
                st.current = rid
            body = (event if isinstance(event, str)
                    else json.dumps(event, separators=(",", ":"))).encode()  # as Lambda sends it
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:123456789012:function:ddb2fs")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/_test/results":
            with st.lock:
                self.reply(200, {"results": st.results, "init_errors": st.init_errors,
                                 "nexts": st.nexts, "first_next_at": st.first_next_at,
                                 "posts": st.posts})
        else:
            self.reply(404, {"errorMessage": "not found", "errorType": "NotFound"})

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        parts = self.path[len(PREFIX):].split("/") if self.path.startswith(PREFIX) else []
        if self.path == "/_test/fail_posts":
            with st.lock:
                st.fail_posts = json.loads(body)["count"]
            self.reply(200, {})
            return
        if self.path == "/_test/invoke":
            req = json.loads(body)
            rid = req.get("id") or str(uuid.uuid4())
            deadline = int(time.time() * 1000) + req.get("timeout_ms", 30000)
            st.queue.put((rid, req["event"], deadline))
            self.reply(200, {"id": rid})
            return
        if parts[:2] == ["", "init"] and parts[2:] == ["error"]:
            with st.lock:
                st.init_errors.append({"error_type": self.headers.get(
                    "Lambda-Runtime-Function-Error-Type"), "body": json.loads(body or b"{}")})
            self.reply(202, {"status": "OK"})
            return
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            rid = parts[2]
            with st.lock:
                if st.fail_posts > 0:
                    st.fail_posts -= 1
                    st.posts.append((rid, parts[3], 503))
                    self.reply(503, {"errorMessage": "Service Unavailable",
                                     "errorType": "ServiceException"})
                    return
                st.posts.append((rid, parts[3], 202))
                if rid != st.current:
                    self.reply(400, {"errorMessage": "Invalid request ID",
                                     "errorType": "InvalidRequestID"})
                    return
                if parts[3] == "response" and len(body) > MAX_PAYLOAD:
                    self.reply(413, {"errorMessage": "Exceeded maximum allowed payload size",
                                     "errorType": "RequestEntityTooLarge"})
                    return
                st.current = None
                st.results[rid] = {"kind": parts[3], "body": json.loads(body or b"null"),
                                   "error_type": self.headers.get(
                                       "Lambda-Runtime-Function-Error-Type"),
                                   "at": int(time.time() * 1000)}
            self.reply(202, {"status": "OK"})
            return
        self.reply(404, {"errorMessage": "not found", "errorType": "NotFound"})


class Server(LocalServer):
    def __init__(self, port=0):
        super().__init__(Handler, port)
        self.state = State()


if __name__ == "__main__":
    serve(Server)
