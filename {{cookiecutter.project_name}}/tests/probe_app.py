"""The app as gunicorn serves it, plus one route that tells what the app believes about the
request (scheme, client address, host, mount path). For tests that run real servers only:
`gunicorn --pythonpath tests 'probe_app:create_app()'`.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from {{ cookiecutter.package_name }} import create_app as create_real_app

PROBE_PATH = "/_probe/request"


def create_app() -> Flask:
    app = create_real_app()

    def believed() -> object:
        return jsonify(
            scheme=request.scheme,
            is_secure=request.is_secure,
            remote_addr=request.remote_addr,
            host=request.host,
            script_root=request.script_root,
        )

    app.add_url_rule(PROBE_PATH, "probe_request", believed)
    return app
