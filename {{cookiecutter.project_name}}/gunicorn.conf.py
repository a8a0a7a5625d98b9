"""gunicorn reads this file when started from this folder (its default `./gunicorn.conf.py`).

Which X-Forwarded-* headers to believe is the app's decision alone: TRUSTED_PROXY_COUNT
(werkzeug's ProxyFix, which counts hops). gunicorn must believe none on its own. By default
it takes `X-Forwarded-Proto: https` (and `X-Forwarded-Ssl`, `X-Forwarded-Protocol`) from
127.0.0.1 and from any Unix-socket peer, and `SCRIPT_NAME`/`PATH_INFO` headers too, so
anything local, or a proxy that passes headers through, could make the app believe the
request came over https or lived under another path.
"""

# Headers that mark a request as https: none. TLS ends at the proxy, and ProxyFix reads
# X-Forwarded-Proto when TRUSTED_PROXY_COUNT says a proxy sets it.
secure_scheme_headers: dict[str, str] = {}
# Peers allowed to set such headers: none (Unix-socket peers are always allowed by gunicorn,
# which is why the two settings around this one are emptied as well).
forwarded_allow_ips = ""
# Headers that may override WSGI variables (SCRIPT_NAME, PATH_INFO): none.
forwarder_headers = ""
