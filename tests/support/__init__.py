"""Helpers the tests and the scripts share: scratch repositories and the commands run in
them, servers, a headless browser, small training problems and simulated studies."""
