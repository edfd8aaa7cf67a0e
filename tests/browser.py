"""Test helpers: a headless Chromium for screenshots and DOM dumps, and a TensorBoard server to
point it at. Every wait is bounded; tests skip with the reason when no browser is installed."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest

# Quiet and offline: no first-run pages, updates, sync or QUIC probes that could reach the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]


def find_chromium():
    """Path of a Chromium binary, or None."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_chromium():
    """The Chromium path; skips the calling test with the reason when there is none."""
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does) for browser tests")
    return path


def _run_chromium(args, timeout):
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="avh-chromium-") as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def dump_dom(url, virtual_time_ms=15000, timeout=60):
    """The page's DOM after its scripts ran (up to `virtual_time_ms` of virtual time), as HTML."""
    result = _run_chromium([f"--virtual-time-budget={virtual_time_ms}", "--dump-dom", url], timeout)
    return result.stdout


def screenshot(url, path, width=1400, height=1000, virtual_time_ms=15000, timeout=60):
    """A PNG of the page at `url` written to `path`; returns the path."""
    path = os.path.abspath(path)
    _run_chromium([f"--virtual-time-budget={virtual_time_ms}", f"--window-size={width},{height}",
                   f"--screenshot={path}", url], timeout)
    if not os.path.exists(path):
        raise RuntimeError(f"Chromium wrote no screenshot for {url}")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def tensorboard(logdir, startup_timeout=60):
    """A `tensorboard --logdir LOGDIR` on a free local port, as a user starts it; yields its base
    URL once it answers, and stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
               "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"tensorboard exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/data/plugins_listing", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tensorboard did not answer within {startup_timeout} s")
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()
