#!/usr/bin/env python3
"""A small Chrome DevTools Protocol client for tests that need a real browser: load a page, run
JavaScript in it, fill a file input, take a screenshot. Standard library only (a minimal
WebSocket client over a socket), so it runs wherever the tests run; the browser is Debian's
chromium-headless-shell (or chromium), started here and stopped on close.

    from headless import Browser, find_chromium
    if find_chromium() is None:
        sys.exit(77)                                   # ctest SKIP_RETURN_CODE
    with Browser() as b:
        page = b.page()
        page.navigate("http://127.0.0.1:8080/")        # waits for the load event
        page.set_file_input("#file", "/tmp/cat.png")   # as if the user picked the file
        page.evaluate("document.querySelector('#go').click()")
        page.wait_for("document.querySelector('#result').dataset.state === 'done'")
        text = page.evaluate("document.querySelector('#result').innerText")
        page.screenshot("/tmp/page.png")
        assert not page.errors, page.errors              # uncaught exceptions and console.error

Every call has a timeout and raises CDPError (with the browser's message) rather than hanging.
"""
import base64
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

CANDIDATES = ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell"]


class CDPError(RuntimeError):
    pass


def find_chromium():
    """The path of a Chromium-family browser, or None. $WANWU_CHROMIUM wins when set."""
    env = os.environ.get("WANWU_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CANDIDATES:
        for p in (shutil.which(name), os.path.join("/usr/bin", name),
                  os.path.join("/usr/lib/chromium-headless-shell", name)):
            if p and os.access(p, os.X_OK):
                return p
    return None


class _WebSocket:
    """RFC 6455, client side, text frames only: what the DevTools endpoint speaks."""

    def __init__(self, url, timeout):
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        if not m:
            raise CDPError(f"not a ws:// URL: {url}")
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CDPError("DevTools closed the connection during the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise CDPError(f"WebSocket handshake refused: {head.splitlines()[0]!r}")

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def _read(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise CDPError("timed out waiting for the browser")
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise CDPError("the browser closed the DevTools connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, deadline):
        """The next text message (fragments joined); answers pings."""
        parts = []
        while True:
            b0, b1 = self._read(2, deadline)
            opcode, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8, deadline))[0]
            mask = self._read(4, deadline) if b1 & 0x80 else None
            payload = self._read(n, deadline)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise CDPError("the browser closed the DevTools connection")
            if opcode == 0x9:  # ping -> pong
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self.sock.sendall(struct.pack("!BB", 0x88, 0x80) + b"\0\0\0\0")
        except OSError:
            pass
        self.sock.close()


class Page:
    """One browser tab. Events are kept in `events` (method, params); uncaught exceptions and
    console.error messages also in `errors`, console messages in `console`."""

    def __init__(self, ws_url, timeout):
        self.timeout = timeout
        self.ws = _WebSocket(ws_url, timeout)
        self.next_id = 0
        self.events = []
        self.console = []
        self.errors = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _note(self, msg):
        self.events.append((msg["method"], msg.get("params", {})))
        p = msg.get("params", {})
        if msg["method"] == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append((p.get("type"), text))
            if p.get("type") == "error":
                self.errors.append("console.error: " + text)
        elif msg["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "?")))

    def call(self, method, timeout=None, **params):
        """Sends one command; returns its result, or raises CDPError with the browser's error."""
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = json.loads(self.ws.recv(deadline))
            if "method" in msg:
                self._note(msg)
            elif msg.get("id") == my_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error'].get('message')} {msg['error'].get('data', '')}".strip())
                return msg.get("result", {})

    def wait_event(self, method, timeout=None, since=0):
        """The params of the first `method` event at index >= since in `events` (waits for it)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        i = since
        while True:
            while i < len(self.events):
                if self.events[i][0] == method:
                    return self.events[i][1]
                i += 1
            msg = json.loads(self.ws.recv(deadline))
            if "method" in msg:
                self._note(msg)

    def navigate(self, url, timeout=None):
        """Loads url and waits for its load event."""
        since = len(self.events)
        r = self.call("Page.navigate", url=url)
        if r.get("errorText"):
            raise CDPError(f"navigate {url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired", timeout, since)

    def evaluate(self, expression, await_promise=False, timeout=None):
        """The JSON value of a JavaScript expression in the page; CDPError if it throws."""
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                      awaitPromise=await_promise)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"evaluate {expression!r}: " + d.get("exception", {}).get("description", d.get("text", "")))
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=None, interval=0.05):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            v = self.evaluate(expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {expression!r} (last value {v!r})")
            time.sleep(interval)

    def set_file_input(self, selector, *paths):
        """Sets the files of an <input type=file> as a user's choice would (fires input/change)."""
        root = self.call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise CDPError(f"no element matches {selector!r}")
        self.call("DOM.setFileInputFiles", nodeId=node, files=[os.path.abspath(p) for p in paths])

    def screenshot(self, path, full_page=True):
        """Writes a PNG of the page (the whole page by default, not only the viewport)."""
        params = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m.get("contentSize")
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        self.ws.close()


class Browser:
    """A headless Chromium with remote debugging on a free port, in a throw-away profile."""

    def __init__(self, binary=None, timeout=30, window="1024,768", extra_args=()):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise CDPError("no Chromium found (Debian: apt-get install chromium-headless-shell)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="wanwu-chromium-")
        self.stderr_path = os.path.join(self.profile, "stderr.log")
        self._stderr = open(self.stderr_path, "wb")
        args = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-dev-shm-usage", "--disable-extensions",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", f"--window-size={window}", *extra_args, "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self.pages = []
        deadline = time.monotonic() + timeout
        self.ws_url = None
        while self.ws_url is None:
            with open(self.stderr_path, "rb") as f:
                m = re.search(rb"DevTools listening on (ws://\S+)", f.read())
            if m:
                self.ws_url = m.group(1).decode()
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                log = open(self.stderr_path, errors="replace").read()[-2000:]
                self.close()
                raise CDPError(f"{self.binary} did not start its DevTools endpoint:\n{log}")
            else:
                time.sleep(0.05)
        self.http = re.match(r"ws://([^/]+)/", self.ws_url).group(1)

    def page(self):
        """A new tab (about:blank)."""
        req = urllib.request.Request(f"http://{self.http}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            target = json.load(r)
        p = Page(target["webSocketDebuggerUrl"], self.timeout)
        self.pages.append(p)
        return p

    def close(self):
        for p in self.pages:
            try:
                p.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
