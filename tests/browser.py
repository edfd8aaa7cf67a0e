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
        stop(server)
        log.close()


# Text of the whole page, shadow roots included (TensorBoard's Polymer dashboards draw inside
# them, where --dump-dom does not look), and the images that loaded.
_DEEP_TEXT_JS = """(() => {
  const texts = [], images = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === 3) texts.push(child.textContent);
      else if ((child.nodeType === 1 && !['SCRIPT', 'STYLE'].includes(child.tagName)) ||
               child.nodeType === 11) walk(child);
    }
    if (node.tagName === 'IMG' && node.complete && node.naturalWidth > 0)
      images.push([node.naturalWidth, node.naturalHeight, node.getBoundingClientRect().width]);
  };
  walk(document);
  return JSON.stringify({text: texts.join(' ').replace(/\\s+/g, ' '), images});
})()"""


def page_text(url, ready=lambda page: False, timeout=60, width=1600, height=1000):
    """{"text": the page's visible text, shadow roots included, "images": [[natural width,
    natural height, shown width], ...]} once `ready(that dict)` holds or `timeout` s passed.
    Talks to Chromium over --remote-debugging-pipe (DevTools protocol on fds 3 and 4)."""
    import json
    import select

    chromium = require_chromium()
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="avh-chromium-") as profile:
        # Chromium reads commands on fd 3 and answers on fd 4. Copies first, so that moving one
        # pipe end to 3 or 4 cannot close the other before it is moved.
        def fds():
            commands, answers = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(commands, 3)
            os.dup2(answers, 4)
        process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_browser_r)
        os.close(from_browser_w)
        buffer, ids = b"", iter(range(1, 10**6))

        def call(method, session=None, **params):
            nonlocal buffer
            message_id = next(ids)
            message = {"id": message_id, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            os.write(to_browser_w, json.dumps(message).encode() + b"\0")
            deadline = time.monotonic() + 30
            while True:
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    answer = json.loads(raw)
                    if answer.get("id") == message_id:
                        if "error" in answer:
                            raise RuntimeError(f"{method}: {answer['error']}")
                        return answer["result"]
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([from_browser_r], [], [], left)[0]:
                    raise RuntimeError(f"Chromium did not answer {method}")
                chunk = os.read(from_browser_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                buffer += chunk

        try:
            deadline = time.monotonic() + timeout
            while True:
                pages = [t for t in call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
                if pages or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            session = call("Target.attachToTarget", targetId=pages[0]["targetId"],
                           flatten=True)["sessionId"]
            while True:
                result = call("Runtime.evaluate", session, expression=_DEEP_TEXT_JS,
                              returnByValue=True)["result"]
                page = json.loads(result.get("value") or '{"text": "", "images": []}')
                if ready(page) or time.monotonic() > deadline:
                    return page
                time.sleep(1)
        finally:
            stop(process)
            os.close(to_browser_w)
            os.close(from_browser_r)


def stop(process, seconds=10):
    """Terminate a process this module started, and kill it if it does not end in time."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=seconds)
