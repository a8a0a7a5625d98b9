"""npm's oidc-provider for the OpenID Connect conformance tests (tests/test_sso_conformance.py)."""
