"""The control API under /_mock/: what tests call to flip switches and inspect the mock."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from .core import json_response, state

bp = Blueprint("mock_control", __name__, url_prefix="/_mock")


@bp.post("/reset")
def reset() -> Response:
    """Switches back to defaults; codes, tokens, consents, counters and minted list forgotten."""
    state().reset()
    return json_response(dict(reset=True))


@bp.get("/switches")
def all_switches() -> Response:
    mock = state()
    with mock.lock:
        return json_response({name: dict(values) for name, values in mock.switches.items()})


@bp.post("/switches/<provider>")
def set_switches(provider: str) -> Response:
    mock = state()
    if provider not in mock.providers:
        abort(404)
    values = request.get_json(silent=True)
    if not isinstance(values, dict):
        return json_response(dict(error="send a JSON object of switch names and values"), 400)
    try:
        return json_response(mock.update_switches(provider, values))
    except ValueError as exc:
        return json_response(dict(error=str(exc)), 400)


@bp.get("/requests")
def request_counts() -> Response:
    """Requests per provider endpoint; every endpoint is listed, 0 when never called."""
    mock = state()
    counts: dict[str, dict[str, int]] = {name: {} for name in mock.providers}
    for rule in current_app.url_map.iter_rules():
        blueprint, _, endpoint = rule.endpoint.rpartition(".")
        provider = mock.blueprint_provider.get(blueprint)
        if provider:
            counts[provider].setdefault(endpoint, 0)
    with mock.lock:
        for provider, counter in mock.counts.items():
            counts[provider].update(counter)
    return json_response(counts)


@bp.get("/minted")
def minted() -> Response:
    """Every code and token handed out since the last reset, for leak checks."""
    mock = state()
    with mock.lock:
        return json_response(list(mock.minted))


@bp.post("/<provider>/rotate-keys")
def rotate_keys(provider: str) -> Response:
    """Publish the next signing key of a provider that signs ID tokens; the old one leaves."""
    mock = state()
    if provider not in mock.providers or provider not in mock.key_rings:
        abort(404)
    return json_response(dict(kid=mock.key_ring(provider).rotate()))
