"""What the local test servers share: a threaded HTTP/1.1 server on 127.0.0.1 that shrugs off
clients hanging up, and the command line that starts one and prints its port."""
import argparse
import sys
from http.server import ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, handler, port=0):
        super().__init__(("127.0.0.1", port), handler)

    def handle_error(self, request, client_address):
        """A client that hangs up (a process killed or timed out) is not the server's problem."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def serve(make):
    """Runs make(port) until killed, after printing "port N" on stdout."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    srv = make(ap.parse_args().port)
    print("port %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
