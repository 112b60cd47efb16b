"""OHIF in a real browser, offline: the prebuilt viewer, a same-origin DICOMweb proxy, headless Chromium.

* OHIF: ``npm pack @ohif/app@<version>`` carries a prebuilt ``dist/`` (no build); it is unpacked
  into a cache folder once (``$RADGROUND_NPM_CACHE``, default ``~/.cache/radground/npm``).
* Orthanc sends no CORS headers, so :class:`OhifServer` serves OHIF and a proxy of Orthanc's
  ``/dicom-web`` from one origin, answers ``/app-config.js`` with a config whose one data source is
  that proxy, and falls back to ``index.html`` for the viewer's routes (``/viewer``).
* The browser: Debian's ``chromium`` (apt, like Orthanc) driven by ``playwright-core`` (npm, no
  browser download) from a node script (``ohif_view.js``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.pacs_support import apt_install

OHIF_VERSION = "3.13.2"
PLAYWRIGHT_VERSION = "1.65.1"
CHROMIUM = "/usr/bin/chromium"
HERE = os.path.dirname(os.path.abspath(__file__))
VIEW_SCRIPT = os.path.join(HERE, "ohif_view.js")

APP_CONFIG = """window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  showStudyList: true,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  investigationalUseDialog: { option: 'never' },
  maxNumberOfWebWorkers: 2,
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'Orthanc (radground test)',
        name: 'orthanc',
        wadoUriRoot: window.location.origin + '/dicom-web',
        qidoRoot: window.location.origin + '/dicom-web',
        wadoRoot: window.location.origin + '/dicom-web',
        qidoSupportsIncludeField: false,
        supportsReject: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
"""


def npm_cache() -> str:
    return os.environ.get("RADGROUND_NPM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "radground", "npm")


def _npm() -> str:
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        pytest.skip("node/npm are not available to fetch OHIF and playwright-core")
    return npm


def ensure_ohif() -> str:
    """The prebuilt OHIF ``dist/`` folder (``npm pack`` once into the cache)."""
    root = os.path.join(npm_cache(), f"ohif-app-{OHIF_VERSION}")
    dist = os.path.join(root, "package", "dist")
    if os.path.isfile(os.path.join(dist, "index.html")):
        return dist
    os.makedirs(root, exist_ok=True)
    proc = subprocess.run([_npm(), "pack", f"@ohif/app@{OHIF_VERSION}"], cwd=root, capture_output=True, text=True, timeout=600)
    tgz = os.path.join(root, f"ohif-app-{OHIF_VERSION}.tgz")
    if proc.returncode != 0 or not os.path.exists(tgz):
        pytest.skip(f"npm pack @ohif/app@{OHIF_VERSION} failed: {proc.stderr[-500:]}")
    with tarfile.open(tgz) as t:
        t.extractall(root, filter="data")
    os.remove(tgz)
    return dist


def ensure_playwright() -> str:
    """A ``node_modules`` folder holding playwright-core (no browser download)."""
    root = os.path.join(npm_cache(), f"playwright-core-{PLAYWRIGHT_VERSION}")
    if os.path.isdir(os.path.join(root, "node_modules", "playwright-core")):
        return os.path.join(root, "node_modules")
    os.makedirs(root, exist_ok=True)
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    proc = subprocess.run([_npm(), "install", "--no-audit", "--no-fund", "--prefix", root, f"playwright-core@{PLAYWRIGHT_VERSION}"],
                          capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        pytest.skip(f"npm install playwright-core@{PLAYWRIGHT_VERSION} failed: {proc.stderr[-500:]}")
    return os.path.join(root, "node_modules")


def ensure_chromium() -> str:
    apt_install(["chromium"], lambda: os.path.exists(CHROMIUM))
    return CHROMIUM


class OhifServer:
    """OHIF's ``dist/`` + ``/dicom-web`` proxied to Orthanc, on 127.0.0.1, in a thread."""

    def __init__(self, dist: str, orthanc: str):
        self.dist, self.orthanc = os.path.realpath(dist), orthanc.rstrip("/")
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the browser asks for hundreds of files
                pass

            def _send(self, status, body: bytes, ctype: str, extra=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = urlsplit(self.path).path
                if path.startswith("/dicom-web/"):
                    return self._proxy()
                if path == "/app-config.js":
                    return self._send(200, APP_CONFIG.encode(), "application/javascript")
                file = os.path.realpath(os.path.join(server.dist, path.lstrip("/")))
                if not file.startswith(server.dist + os.sep) or not os.path.isfile(file):
                    file = os.path.join(server.dist, "index.html")  # the viewer's client-side routes
                with open(file, "rb") as f:
                    body = f.read()
                return self._send(200, body, _content_type(file))

            def _proxy(self):
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
                r = requests.get(server.orthanc + self.path, headers=headers, timeout=120)
                keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type",)}
                self._send(r.status_code, r.content, keep.pop("Content-Type", "application/octet-stream"), keep)

        return Handler


def _content_type(path: str) -> str:
    for ext, ctype in ((".html", "text/html"), (".js", "application/javascript"), (".css", "text/css"), (".wasm", "application/wasm"),
                       (".json", "application/json"), (".svg", "image/svg+xml"), (".woff2", "font/woff2"), (".png", "image/png")):
        if path.endswith(ext):
            return ctype
    return "application/octet-stream"


def view_in_ohif(node_modules: str, url: str, screenshot: str, expect: dict, timeout_s: int = 240) -> dict:
    """Run ``ohif_view.js``: open ``url`` in headless Chromium, load the SEG, screenshot; its JSON report."""
    env = dict(os.environ, NODE_PATH=node_modules, CHROMIUM=CHROMIUM)
    proc = subprocess.run(["node", VIEW_SCRIPT, url, screenshot, json.dumps(expect)], capture_output=True, text=True, timeout=timeout_s + 60, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise AssertionError(f"ohif_view.js gave no report (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])
