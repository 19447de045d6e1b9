#!/usr/bin/env python3
"""nginx serving a directory, for the "static" section of bench/run.py: ``nginx_static.py PORT DOCROOT``.

Writes a configuration into a temporary directory and execs nginx in the foreground with it: one worker
process (``worker_processes 1``; the master only supervises), ``sendfile on`` with ``tcp_nopush`` (the
Debian default configuration's choice), no access log, keep-alive without a request limit, as tricorn
serves a connection.
"""

from __future__ import annotations

import os
import sys
import tempfile

CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def main() -> None:
    port, root = sys.argv[1], os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="nginx-bench-")
    conf = os.path.join(tmp, "nginx.conf")
    user = "user root;" if os.geteuid() == 0 else ""  # the worker must read the run's private temp dir
    with open(conf, "w") as file:
        file.write(CONFIG.format(user=user, tmp=tmp, port=port, root=root))
    os.execvp("nginx", ["nginx", "-p", tmp, "-e", "stderr", "-c", conf])


if __name__ == "__main__":
    main()
