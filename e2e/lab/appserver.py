#!/usr/bin/env python3
"""A lab app server: the upstream the balancers' sites proxy to.

Usage: appserver.py NAME ADDR HTTP_PORT TCP_PORT

HTTP on HTTP_PORT: every path answers 200 with "NAME PATH\n" and an X-App
header naming the server (a test sees which app server answered). TCP on
TCP_PORT: a greeting "NAME\n", then the connection closes (the stream
proxy's upstream). Only the standard library: it runs with the machine's
python3 inside the app server's network namespace.
"""
import http.server
import socketserver
import sys
import threading

NAME, ADDR, HTTP_PORT, TCP_PORT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keepalive from nginx's pools

    def do_GET(self):
        body = ("%s %s\n" % (NAME, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App", NAME)
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


class HTTP(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


class Greeter(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall((NAME + "\n").encode())


class TCP(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    tcp = TCP((ADDR, TCP_PORT), Greeter)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    HTTP((ADDR, HTTP_PORT), Handler).serve_forever()
