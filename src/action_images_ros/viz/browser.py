"""Serve an ``.rrd`` to Rerun's web viewer on 127.0.0.1 and screenshot it in headless Chromium (no ROS).

Used by the viewer's browser test and by ``bench/make_view_screenshot.py`` (the README's
picture): the same two steps a person takes, done by a program.

* :class:`WebViewer` runs ``rerun --serve-web --bind 127.0.0.1 --web-viewer-port P --port Q FILE``
  in a process group of its own (``rerun`` on the PATH is a Python wrapper around the real
  binary, so stopping only the wrapper would leave the server running) and reads the URL it prints.
* :func:`screenshot` starts headless Chromium with a DevTools port, opens the URL over the
  DevTools protocol (``websocket-client``), waits, and returns ``Page.captureScreenshot`` as an
  RGB array. The browser console is not captured (the viewer logs ~16k debug lines; reading them
  made a shot ~5x slower). Without a GPU Chromium renders WebGL2 with SwiftShader.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

__all__ = ["WebViewer", "screenshot", "chromium_path", "free_port", "BrowserError"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(RuntimeError):
    """The web viewer or the browser did not start or answer as expected."""


def chromium_path() -> str | None:
    """The Chromium executable on the PATH (Debian ``chromium``), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rerun_cli() -> list[str]:
    """The rerun CLI of this interpreter's environment (the binary bundled with rerun-sdk)."""
    exe = Path(sys.executable).with_name("rerun")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("rerun")
    if found:
        return [found]
    return [sys.executable, "-m", "rerun_cli"]


def _stop_group(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), then SIGKILL."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children may outlive the leader
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, timeout_s)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class WebViewer:
    """``rerun --serve-web`` of ``.rrd`` files on 127.0.0.1 (a context manager).

    Args:
        rrd: the recording file(s) to serve.
        web_port: HTTP port of the viewer page (0 = a free one).
        grpc_port: port of the data server the page connects to (0 = a free one).
        start_timeout_s: how long to wait for the URL and the page to answer.

    Attributes:
        url: the page to open (``http://127.0.0.1:P?url=rerun+http://127.0.0.1:Q/proxy``).
    """

    def __init__(self, rrd: str | Path | Sequence[str | Path], web_port: int = 0, grpc_port: int = 0,
                 start_timeout_s: float = 60.0) -> None:
        self.files = [Path(rrd)] if isinstance(rrd, (str, Path)) else [Path(f) for f in rrd]
        missing = [str(f) for f in self.files if not f.is_file()]
        if missing or not self.files:
            raise FileNotFoundError(f"no recording at {missing or 'none given'}")
        self.web_port = int(web_port) or free_port()
        self.grpc_port = int(grpc_port) or free_port()
        self.start_timeout_s = float(start_timeout_s)
        self.url = ""
        self._proc: subprocess.Popen | None = None
        self._lines: list[str] = []

    def start(self) -> str:
        cmd = _rerun_cli() + ["--serve-web", "--bind", "127.0.0.1", "--web-viewer-port", str(self.web_port),
                              "--port", str(self.grpc_port)] + [str(f) for f in self.files]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True, env={**os.environ, "RERUN_ANALYTICS": "0"})
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"rerun --serve-web exited with {self._proc.returncode}: "
                                   + " | ".join(self._lines[-5:]))
            for line in list(self._lines):
                m = re.search(r"(http://127\.0\.0\.1:\d+/?\?url=\S+)", line)
                if m:
                    self.url = m.group(1)
            if self.url and _http_ok(f"http://127.0.0.1:{self.web_port}/"):
                return self.url
            time.sleep(0.1)
        self.stop()
        raise BrowserError(f"rerun --serve-web printed no viewer URL within {self.start_timeout_s:g} s: "
                           + " | ".join(self._lines[-5:]))

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if len(self._lines) < 200:
                self._lines.append(line.rstrip())

    def stop(self) -> None:
        if self._proc is not None:
            _stop_group(self._proc)
            self._proc = None

    def __enter__(self) -> "WebViewer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return r.status == 200
    except OSError:
        return False


def screenshot(url: str, width: int = 1600, height: int = 1000, wait_s: float = 8.0, settle_s: float = 90.0,
               settle_every_s: float = 3.0, until: Callable[[np.ndarray], bool] | None = None, stable_shots: int = 3,
               chromium: str | None = None, timeout_s: float = 90.0) -> np.ndarray:
    """Open ``url`` in headless Chromium and return the page as RGB ``(height, width, 3)`` uint8.

    Driven over the DevTools protocol: ``Page.navigate``, ``wait_s`` seconds, then
    ``Page.captureScreenshot`` every ``settle_every_s`` until ``until(image)`` is true of a shot that agrees
    with the one before it (a panel caught mid-layout can already look right) or, without
    ``until``, ``stable_shots`` shots in a row agree (mean absolute difference < 0.05 levels: the viewer
    has loaded the recording), at most ``settle_s`` seconds (then the last shot is returned). Each
    capture makes the page render a frame, which is also what moves the viewer's loading on: headless,
    a page nobody looks at can sit still with half its data read, so ask for more stable shots than
    seems needed. (The plain
    ``--screenshot`` flag captures the loading page.) Raises :class:`BrowserError` when Chromium is
    missing or does not answer.
    """
    import websocket  # websocket-client (requirements.txt)

    exe = chromium or chromium_path()
    if exe is None:
        raise BrowserError("no chromium on the PATH (Debian: apt-get install chromium; `make test` installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="viz_chromium_") as profile:
        cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu-sandbox", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
               "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist",
               f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
               f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            ws_url = _page_websocket(port, proc, timeout_s)
            ws = websocket.create_connection(ws_url, timeout=timeout_s, suppress_origin=True)
            try:
                ids = iter(range(1, 1_000_000))

                def call(method: str, **params) -> dict:
                    mid = next(ids)
                    ws.send(json.dumps({"id": mid, "method": method, "params": params}))
                    while True:  # skip events until the answer
                        msg = json.loads(ws.recv())
                        if msg.get("id") == mid:
                            if "error" in msg:
                                raise BrowserError(f"{method}: {msg['error']}")
                            return msg.get("result", {})

                call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=False)
                call("Page.navigate", url=url)
                time.sleep(wait_s)
                image = _decode_png(call("Page.captureScreenshot", format="png")["data"])
                deadline, same = time.monotonic() + settle_s, 0
                while time.monotonic() < deadline:  # until loaded (the recording streams in for a while)
                    if until is not None and same >= 1 and until(image):
                        break
                    time.sleep(settle_every_s)
                    later = _decode_png(call("Page.captureScreenshot", format="png")["data"])
                    changed = float(np.mean(np.abs(later.astype(np.int16) - image.astype(np.int16))))
                    image = later
                    same = same + 1 if changed < 0.05 else 0
                    if until is None and same >= stable_shots - 1:
                        break
            finally:
                ws.close()
        finally:
            _stop_group(proc)
    return image


def _decode_png(data: str) -> np.ndarray:
    png = np.frombuffer(base64.b64decode(data), dtype=np.uint8)
    bgr = cv2.imdecode(png, cv2.IMREAD_COLOR)
    if bgr is None:
        raise BrowserError("Page.captureScreenshot returned no decodable PNG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _page_websocket(port: int, proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrowserError(f"chromium exited with {proc.returncode} before its DevTools port answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=1.0) as r:
                pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.2)
    raise BrowserError(f"chromium's DevTools port {port} did not answer within {timeout_s:g} s")
