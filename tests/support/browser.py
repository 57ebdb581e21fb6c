"""A headless Chromium driven over the DevTools protocol on a pipe: no package beyond Chromium.

With `--remote-debugging-pipe` Chromium reads protocol commands from its file descriptor 3 and
writes replies and events to 4, each message JSON ended by a NUL byte. The tests use it to open
an MLflow UI page, wait until the page shows what they expect, read its text and screenshot it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


class Browser:
    def __init__(self, profile: Path, width: int = 1600, height: int = 1000):
        chromium = shutil.which("chromium")
        assert chromium, "no chromium: scripts/chromium-up installs it (make test does)"
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def give_the_pipes_their_numbers() -> None:  # in the child, before Chromium starts
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-pipe",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=give_the_pipes_their_numbers,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.width, self.height = width, height

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result, skipping the events that come before it."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._replies], [], [], max(left, 0))
                assert ready, f"Chromium did not answer {method} within 60 s"
                chunk = os.read(self._replies, 1 << 20)
                assert chunk, f"Chromium closed the pipe while answering {method}"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

    def open(self, url: str) -> str:
        """A new tab at `url`; the session that drives it."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session_id = session["sessionId"]
        metrics = {"width": self.width, "height": self.height, "deviceScaleFactor": 1}
        self.send("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False}, session_id)
        return session_id

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return result["result"].get("value")

    def navigate(self, session: str, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session)

    def text_once(self, session: str, wanted: list[str], timeout: float = 120) -> str:
        """The page's text once it contains every string of `wanted` (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.evaluate(session, "document.body ? document.body.innerText : ''") or ""
            if all(w in text for w in wanted) or time.monotonic() > deadline:
                return text
            time.sleep(1)

    def screenshot(self, session: str, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
