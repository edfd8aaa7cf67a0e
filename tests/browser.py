"""Test helpers: a headless Chromium for screenshots, DOM dumps and pages driven over the DevTools
protocol (`Page`), and a TensorBoard server to point it at. Every wait is bounded; Chromium runs in
a process group of its own that is ended whole before its profile folder is removed; tests skip
with the reason when no browser is installed."""
import os
import shutil
import signal
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


def _start_chromium(args, **popen):
    """Chromium in a session (process group) of its own, with a fresh profile folder:
    (process, profile). Stop it with `_stop_chromium`."""
    chromium = require_chromium()
    profile = tempfile.mkdtemp(prefix="avh-chromium-")
    try:
        process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                                   start_new_session=True, **popen)
    except BaseException:
        _remove_profile(profile)
        raise
    return process, profile


def _stop_chromium(process, profile, seconds=10):
    """End Chromium and every process it started (its renderers and helpers keep writing to the
    profile for a moment after the main process is gone), then remove the profile. Bounded."""
    stop_group(process, seconds)
    _remove_profile(profile)


def _remove_profile(profile, attempts=10):
    """Remove a profile folder; a straggling helper may still write into it (`OSError: [Errno 39]
    Directory not empty`), so retry, and at last leave what cannot go rather than fail a test."""
    for _ in range(attempts):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.2)
    shutil.rmtree(profile, ignore_errors=True)


def _run_chromium(args, timeout):
    process, profile = _start_chromium(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        _stop_chromium(process, profile)


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


class Page:
    """A headless Chromium showing `url`, driven over the DevTools protocol
    (--remote-debugging-pipe: commands on fd 3, answers on fd 4): evaluate JavaScript, wait for
    a condition, click and drag with real mouse events, take screenshots. Use it in a `with`
    block; every call waits at most `call_timeout` seconds."""

    def __init__(self, url, width=1600, height=1000, timeout=60, call_timeout=30):
        self.url, self.width, self.height = url, width, height
        self.timeout, self.call_timeout = timeout, call_timeout

    def __enter__(self):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # Chromium reads commands on fd 3 and answers on fd 4. Copies first, so that moving one
        # pipe end to 3 or 4 cannot close the other before it is moved.
        def fds():
            commands, answers = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        try:
            self._process, self._profile = _start_chromium(
                ["--remote-debugging-pipe", f"--window-size={self.width},{self.height}", self.url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4))
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        self._buffer, self._ids, self._session = b"", iter(range(1, 10 ** 9)), None
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
                if pages:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium opened no page for {self.url}")
                time.sleep(0.3)
            self._session = self.call("Target.attachToTarget", targetId=pages[0]["targetId"],
                                      flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            _stop_chromium(self._process, self._profile)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def call(self, method, **params):
        """One DevTools command (to the page once attached); its result."""
        import json
        import select

        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.call_timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == message_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise RuntimeError(f"Chromium did not answer {method}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk

    def evaluate(self, expression):
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise RuntimeError(f"{expression[:80]}: {details.get('exception', {}).get('description') or details}")
        # A DOM node comes back as {} (falsy here): ask for `!!node` to test that one exists.
        return answer["result"].get("value")

    def wait_for(self, condition, timeout=30, interval=0.25, what=None):
        """Until `condition` holds, a JavaScript expression or a function of this page; returns
        its last value. Raises after `timeout` seconds, saying what it waited for."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(condition) if isinstance(condition, str) else condition(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {what or condition}")
            time.sleep(interval)

    def text(self):
        """{"text": the page's visible text, shadow roots included, "images": [[natural width,
        natural height, shown width], ...]}."""
        import json
        return json.loads(self.evaluate(_DEEP_TEXT_JS) or '{"text": "", "images": []}')

    def centre(self, selector):
        """(x, y) of the middle of the first element matching `selector`, in CSS pixels."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        return tuple(box)

    def mouse(self, kind, x, y, buttons=0):
        """One mouse event at (x, y) CSS pixels: mouseMoved, mousePressed or mouseReleased (the
        left button; `buttons=1` while it is held)."""
        button = "left" if kind != "mouseMoved" or buttons else "none"
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button=button, buttons=buttons, clickCount=1)

    def click(self, point):
        """A left click at `point` (x, y), e.g. `page.click(page.centre("#reload"))`."""
        x, y = point
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, buttons=1)
        self.mouse("mouseReleased", x, y)

    def drag(self, start, end, steps=8):
        """Press the left button at `start` (x, y), move to `end` in `steps`, release."""
        (x0, y0), (x1, y1) = start, end
        self.mouse("mouseMoved", x0, y0)
        self.mouse("mousePressed", x0, y0, buttons=1)
        for i in range(1, steps + 1):
            self.mouse("mouseMoved", x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, buttons=1)
        self.mouse("mouseReleased", x1, y1)

    def screenshot(self, path, selector=None, attempts=20):
        """A PNG of the page (or of the element `selector`, scrolled into view) at `path`. An
        element is taken where it was both before and after the capture: a panel above it that
        grows meanwhile (its data arriving late on a busy machine) moves it out of the clip."""
        import base64
        params = {"format": "png", "captureBeyondViewport": True}
        where = (f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
                 " return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height]; })()")
        for _ in range(attempts):
            if selector:
                rect = self.evaluate(where)
                params["clip"] = {"x": rect[0], "y": rect[1], "width": rect[2], "height": rect[3], "scale": 1}
            data = self.call("Page.captureScreenshot", **params)["data"]
            if not selector or self.evaluate(where) == rect:
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"{selector} kept moving: no steady screenshot of it")
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return os.path.abspath(path)


def page_text(url, ready=lambda page: False, timeout=60, width=1600, height=1000):
    """{"text": the page's visible text, shadow roots included, "images": [[natural width,
    natural height, shown width], ...]} once `ready(that dict)` holds or `timeout` s passed."""
    with Page(url, width=width, height=height, timeout=timeout) as page:
        deadline = time.monotonic() + timeout
        while True:
            text = page.text()
            if ready(text) or time.monotonic() > deadline:
                return text
            time.sleep(1)


def stop(process, seconds=10):
    """Terminate a process this module started, and kill it if it does not end in time."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=seconds)


def stop_group(process, seconds=10):
    """Terminate the process group a process leads (it was started with start_new_session),
    kill what is left after `seconds`, and wait (bounded) until no process of the group runs."""
    pgid = process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_running(pgid):
                return
            time.sleep(0.05)
    process.wait(timeout=seconds)


def _group_running(pgid):
    """Whether a process of group `pgid` still runs (zombies, which write nothing, do not count)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False
