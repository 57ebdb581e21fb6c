"""The Makefile installs with uv under pip's configuration: same indexes, wheel folders,
constraints and certificate, so both resolve the same versions from the same places."""

from __future__ import annotations

from scripts.uv_install import uv_environment

PIP_CONFIG_LIST = """\
global.cert='/etc/ssl/ca.crt'
global.extra-index-url='file:///srv/a/simple\\nfile:///srv/b/simple'
global.find-links='/srv/wheels'
global.timeout='60'
install.find-links='/srv/install-wheels /srv/more-wheels'
:env:.cert='/etc/ssl/env.crt'
:env:.disable-pip-version-check='1'
"""


def test_pips_settings_reach_uv_with_uvs_separators() -> None:
    env = uv_environment(PIP_CONFIG_LIST)
    # a newline between pip's values becomes the space uv splits index URLs on ...
    assert env["UV_EXTRA_INDEX_URL"] == "file:///srv/a/simple file:///srv/b/simple"
    # ... and the comma it splits wheel folders on; [install] overrides [global] as in pip
    assert env["UV_FIND_LINKS"] == "/srv/install-wheels,/srv/more-wheels"
    assert env["SSL_CERT_FILE"] == "/etc/ssl/env.crt"  # PIP_CERT overrides the files
    assert env["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # pip's best match over indexes
    assert set(env) == {"UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "SSL_CERT_FILE", "UV_INDEX_STRATEGY"}


def test_no_pip_configuration_leaves_uv_on_its_defaults() -> None:
    assert uv_environment("") == {"UV_INDEX_STRATEGY": "unsafe-best-match"}
