"""A minimal headless-Chromium driver over the DevTools protocol, for rendering tests of the HTML reports.

It needs only Debian's ``chromium`` (installed by ``scripts/setup_system.sh``) and ``websockets`` (already a
Dagster dependency): no Playwright, no browser download. :func:`render` opens one local file, waits for the
load event, and returns what a reviewer needs: console errors, uncaught exceptions, failed loads, every
request that left the machine, a few DOM facts, a full-page PNG screenshot and, when asked, one screenshot
per ``<section id>``. It also measures every plot (``figure.plot``, as :mod:`analysis.publish.figures` draws
them) in the rendered page: a plot must have an x- and a y-axis label (elements with ids ``axis-label-x-*``
and ``axis-label-y-*`` holding text), and no two tick labels of one axis may overlap (their rendered boxes,
from ``getBoundingClientRect``, intersect): :attr:`Rendered.plot_problems`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

#: Flags that keep Chromium quiet on a closed network and runnable as root in a container.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
)


def chromium_path() -> str | None:
    """Path of the Chromium binary, or None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Rendered:
    """What one page did while it loaded."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    dom: dict = field(default_factory=dict)
    screenshot: Path | None = None
    #: One PNG per section id (``render(..., sections=dir)``).
    section_shots: dict[str, Path] = field(default_factory=dict)
    #: Plots without an axis label or with overlapping tick labels, as readable lines.
    plot_problems: list[str] = field(default_factory=list)
    plots: int = 0

    @property
    def problems(self) -> list[str]:
        """Everything that should make a rendering test fail, as readable lines."""
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.exceptions]
            + [f"failed load: {m}" for m in self.failed_loads]
            + [f"request left the machine: {m}" for m in self.external_requests]
        )


class _Session:
    """One DevTools websocket, attached to one page target with a flat session id."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []
        self.session_id: str | None = None

    def send(self, method: str, params: dict | None = None, *, timeout: float = 60.0) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session_id and not method.startswith("Target."):
            message["sessionId"] = self.session_id
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, *, timeout: float = 60.0) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return


def _start(binary: str, profile: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.exists() and len(lines := port_file.read_text().splitlines()) >= 2:
            return proc, f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode} before DevTools came up")
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError("chromium did not open its DevTools port within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop Chromium and its helper processes by process group (they may ignore SIGINT)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _text(args: list[dict]) -> str:
    return " ".join(str(a.get("value", a.get("description", a.get("type", "")))) for a in args)


DOM_FACTS = """(() => ({
  title: document.title,
  sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
  svgs: document.querySelectorAll('svg').length,
  visibleSvgs: Array.from(document.querySelectorAll('svg'))
      .filter(s => { const r = s.getBoundingClientRect(); return r.width > 20 && r.height > 20; }).length,
  tables: document.querySelectorAll('table').length,
  height: document.documentElement.scrollHeight,
  textLength: document.body.innerText.length,
  externalRefs: Array.from(document.querySelectorAll('[src],[href]'))
      .map(e => e.getAttribute('src') || e.getAttribute('href'))
      .filter(u => /^(https?:)?\\/\\//i.test(u)),
}))()"""


PLOT_FACTS = """(() => {
  const problems = [];
  const plots = Array.from(document.querySelectorAll('figure.plot'));
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 &&
                            Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
  plots.forEach((plot, i) => {
    const name = plot.getAttribute('data-plot') || ('plot ' + i);
    for (const axis of ['x', 'y']) {
      const labels = Array.from(plot.querySelectorAll('[id^="axis-label-' + axis + '"]'))
        .filter(l => l.textContent.trim().length > 0);
      if (!labels.length) problems.push(name + ': no ' + axis + '-axis label');
      // tick labels of each axes (its own <g id="axes_N">) must not overlap one another
      for (const axes of plot.querySelectorAll('g[id^="axes_"]')) {
        const boxes = Array.from(axes.querySelectorAll('g[id^="' + axis + 'tick_"] text'))
          .map(t => ({text: t.textContent, box: t.getBoundingClientRect()}))
          .filter(t => t.text.trim() && t.box.width > 0);
        for (let a = 0; a < boxes.length; a++)
          for (let b = a + 1; b < boxes.length; b++)
            if (overlap(boxes[a].box, boxes[b].box))
              problems.push(name + ': ' + axis + ' tick labels overlap: "' + boxes[a].text + '" and "' +
                            boxes[b].text + '"');
      }
    }
  });
  return {plots: plots.length, problems: problems};
})()"""

SECTION_BOXES = """(() => Array.from(document.querySelectorAll('section[id]')).map(s => {
  const r = s.getBoundingClientRect();
  return {id: s.id, x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};
}))()"""


def render(page: Path, screenshot: Path, *, max_height: int = 16000, sections: Path | None = None) -> Rendered:
    """Open ``page`` in headless Chromium and report console errors, requests and a full-page screenshot.

    With ``sections``, also write ``<sections>/<page stem>__<section id>.png`` for every section.
    """
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (scripts/setup_system.sh installs it)")
    url = page.resolve().as_uri()
    result = Rendered(url=url)
    with tempfile.TemporaryDirectory(prefix="cti-chromium-") as profile:
        proc, browser_ws = _start(binary, Path(profile))
        try:
            with connect(browser_ws, max_size=256 * 1024 * 1024, open_timeout=30) as ws:
                cdp = _Session(ws)
                target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
                cdp.session_id = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                    "sessionId"
                ]
                for domain in ("Page", "Runtime", "Log", "Network"):
                    cdp.send(f"{domain}.enable")
                cdp.events.clear()
                cdp.send("Page.navigate", {"url": url})
                cdp.wait_for("Page.loadEventFired", timeout=120)
                cdp.drain(0.5)
                result.dom = cdp.send("Runtime.evaluate", {"expression": DOM_FACTS, "returnByValue": True})[
                    "result"
                ]["value"]
                facts = cdp.send("Runtime.evaluate", {"expression": PLOT_FACTS, "returnByValue": True})[
                    "result"]["value"]
                result.plots, result.plot_problems = facts["plots"], facts["problems"]
                metrics = cdp.send("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height),
                        "scale": 1}
                shot = cdp.send("Page.captureScreenshot",
                                {"format": "png", "clip": clip, "captureBeyondViewport": True}, timeout=120)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                result.screenshot = screenshot
                if sections is not None:
                    boxes = cdp.send("Runtime.evaluate", {"expression": SECTION_BOXES,
                                                          "returnByValue": True})["result"]["value"]
                    sections.mkdir(parents=True, exist_ok=True)
                    for box in boxes:
                        clip = {"x": box["x"], "y": box["y"], "width": max(box["width"], 1),
                                "height": min(max(box["height"], 1), max_height), "scale": 1}
                        part = cdp.send("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                                   "captureBeyondViewport": True}, timeout=120)
                        path = sections / f"{page.stem}__{box['id']}.png"
                        path.write_bytes(base64.b64decode(part["data"]))
                        result.section_shots[box["id"]] = path
        finally:
            _stop(proc)
    for event in cdp.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.console_errors.append(_text(params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            result.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            result.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            result.failed_loads.append(f"{params.get('errorText')} ({params.get('requestId')})")
        elif method == "Network.requestWillBeSent":
            request_url = params.get("request", {}).get("url", "")
            if not request_url.startswith(("file:", "data:", "about:", "blob:")):
                result.external_requests.append(request_url)
    return result
