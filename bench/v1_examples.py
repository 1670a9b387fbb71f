"""Check 3 of bench.v1_clients: Solar Protocol's v1 API examples, unchanged, against a PHP node and a nutbridge node.

The examples come from the mirror's HEAD with the clients (utilities/apiV1-examples, extracted by
bench.v1_clients at run time, never kept here):

- clientGet-example.py (argv: dst, key in value|line|day, value) GETs http://dst/api/v1/chargecontroller.php
  ?key=value with requests and prints its argv and the answer. It runs in the clients' venv from a visitor's
  namespace on the bridge, once per query against the PHP node, then against the nutbridge node (same data,
  same address and MAC); its stdout and exit status must match byte for byte.
- clientGet-JS-example (index.html, clientGet-example.js) reads ?key=&value= from its own URL, GETs
  http://solarprotocol.net/api/v1/chargecontroller.php?key=value with a synchronous XMLHttpRequest, then
  JSON.parse and console.log. A static server in the visitor's namespace serves the two files; Debian's
  chromium (through playwright, in the same namespace) opens index.html?key=…&value=…, with solarprotocol.net
  mapped to the node under test (``--host-resolver-rules``). What the page logs (each console message's type,
  text and its arguments' JSON values) and its uncaught errors must match.

The page's origin is not solarprotocol.net, so its request is cross-origin: a real node's Apache adds
``Access-Control-Allow-Origin: *``, ``php -S`` does not, and chromium would block PHP's answer where nutbridge's
(which carries the header) goes through. The PHP node of this check therefore runs ``php -S`` with a router
script that sets that header and returns false (PHP then serves the request as without a router): the API
files are unchanged, and the answers carry the header as on a real node.

``python -m bench.v1_examples --browse ORIGIN NODE_IP KEY=VALUE …`` is the browser part (run by the check in
the visitor's namespace): one JSON list of results on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bench import netns
from bench.v1_clients import REPO, Node, Run, Spec, first_difference, prepare_node

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Error

EXAMPLES = "utilities/apiV1-examples"  # in the extracted sources
PY_EXAMPLE = f"{EXAMPLES}/clientGet-example.py"
JS_EXAMPLE = f"{EXAMPLES}/clientGet-JS-example"
NODE = Spec("e", "Example Node", "10.77.0.31", "b8:27:eb:77:00:31", "Etc/GMT+5", "30", 20.0, knows=("e",))
# The visitor: where the Python example, the static server and the browser run (a host on the bridge).
VISITOR = Spec("visitor", "Visitor", "10.77.0.32", "02:00:00:77:00:32", "UTC", "0", 0.0)
PAGE_PORT = 8000
PY_QUERIES = [
    ("value", "PV-voltage"), ("value", "scaled-wattage"), ("value", "battery-percentage"), ("line", "0"),
    ("line", "len"), ("line", "head"), ("day", "list"), ("day", "1"), ("day", "2"), ("day", "len"),
    ("value", "nope"), ("line", "999"),
]  # fmt: skip
# The page's queries: those that answer JSON, then a number, then text and an empty answer (JSON.parse throws).
JS_QUERIES = [("line", "0"), ("line", "head"), ("day", "list"), ("day", "1"), ("value", "PV-voltage"),
              ("value", "nope"), ("line", "999")]  # fmt: skip
PARSES = {("line", "0"), ("line", "head"), ("day", "list"), ("day", "1"), ("value", "PV-voltage")}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip  # as tests/
# What Apache adds on a real node (and nutbridge sends); returning false lets php -S serve the request itself.
CORS_ROUTER = '<?php\nheader("Access-Control-Allow-Origin: *");\nreturn false;\n'


def python_example(run: Run, visitor: str, zone: str, key: str, value: str) -> str:
    """clientGet-example.py against the node, from the visitor: its exit status, stdout and stderr's tail."""
    argv = [str(run.python), str(run.sources / PY_EXAMPLE), NODE.ip, key, value]
    done = subprocess.run(run.net.command(visitor, argv), capture_output=True, env=run.env(zone), cwd="/",
                          timeout=60, check=False)  # fmt: skip
    stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
    return f"exit {done.returncode}\n{done.stdout.decode('utf-8', 'replace')}" + "".join(f"stderr: {x}" for x in stderr)


def browse_in(run: Run, visitor: str, zone: str) -> tuple[str, list[dict[str, Any]]]:
    """The page for every query in chromium, in the visitor's namespace: (chromium's version, results)."""
    argv = [sys.executable, "-m", "bench.v1_examples", "--browse", f"http://{VISITOR.ip}:{PAGE_PORT}", NODE.ip,
            *(f"{k}={v}" for k, v in JS_QUERIES)]  # fmt: skip
    done = run.net.run(visitor, argv, env={**run.env(zone), "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=300)
    if done.returncode != 0:
        (run.root / "logs" / "browser.err").write_text(done.stderr)
        last = done.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"the browser script failed ({done.returncode}): {''.join(last)} (logs/browser.err)")
    data = json.loads(done.stdout)
    return data["version"], data["results"]


def summary(result: dict[str, Any], width: int = 110) -> str:
    text = json.dumps(result, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def check3(run: Run, label: str, zone: str) -> None:
    """The Python example for PY_QUERIES and the JS example in chromium for JS_QUERIES, on a PHP node, then on a
    nutbridge node with the same data at the same address; compare what each printed or logged."""
    visitor = run.space(VISITOR)
    now = time.time()
    router = run.root / "cors-router.php"
    router.write_text(CORS_ROUTER)
    py: dict[str, list[str]] = {}
    js: dict[str, list[dict[str, Any]]] = {}
    versions = ""
    page_log = run.root / "logs" / f"check{label}-page-server.log"
    page_log.parent.mkdir(exist_ok=True)
    with contextlib.ExitStack() as page_server:
        proc = page_server.enter_context(run.net.background(
            visitor, ["python3", "-m", "http.server", "--bind", VISITOR.ip, "--directory",
                      str(run.sources / JS_EXAMPLE), str(PAGE_PORT)], page_log,
        ))  # fmt: skip
        netns.wait_port(visitor, VISITOR.ip, PAGE_PORT, proc, page_log)
        for kind in ("php", "nutbridge"):
            spec = replace(NODE, zone=zone, kind=kind)
            node: Node = prepare_node(run.root / f"check{label}-{kind}", run.sources, spec, {spec.key: spec},
                                      now=now, hash_=run.hash)  # fmt: skip
            with contextlib.ExitStack() as servers:
                run.server(node, servers, specs={spec.key: spec}, router=router if kind == "php" else None)
                py[kind] = [python_example(run, visitor, zone, k, v) for k, v in PY_QUERIES]
                versions, js[kind] = browse_in(run, visitor, zone)
    saved = {"python": [[*q, *ab] for q, *ab in zip(PY_QUERIES, py["php"], py["nutbridge"], strict=True)],
             "page": [[*q, *ab] for q, *ab in zip(JS_QUERIES, js["php"], js["nutbridge"], strict=True)]}  # fmt: skip
    (run.root / f"check{label}-results.json").write_text(json.dumps(saved, indent=1))  # key, value, PHP, nutbridge
    print(f"   PHP: php -S with {router.name} (Access-Control-Allow-Origin: *, as Apache adds); {versions}")
    for (key, value), a, b in zip(PY_QUERIES, py["php"], py["nutbridge"], strict=True):
        subject = f"clientGet-example.py {NODE.ip} {key} {value}: exit status and stdout"
        if a == b:
            run.add(label, subject, "identical")
        else:
            run.add(label, subject, "DIFFERENT", first_difference(a, b))
    for (key, value), page_a, page_b in zip(JS_QUERIES, js["php"], js["nutbridge"], strict=True):
        subject = f"clientGet-JS-example index.html?key={key}&value={value}: console and page errors"
        parses = (key, value) in PARSES
        got = any(m["args"] for m in page_a["console"]) if parses else bool(page_a["errors"])
        if not got:  # the PHP node's page must show what the example is for, else equality proves nothing
            run.add(label, subject, "ERROR", f"PHP's page did not {'log' if parses else 'throw'}: {summary(page_a)}")
        elif page_a == page_b:
            run.add(label, subject, "identical")
        else:
            run.add(label, subject, "DIFFERENT", first_difference(json.dumps(page_a), json.dumps(page_b), 120))


# --- the browser part (run in the visitor's namespace) -------------------------------------------------------


def visit(browser: Browser, url: str) -> dict[str, Any]:
    """One page: its console messages (type, text, the arguments' JSON values), its uncaught errors."""
    page = browser.new_page()
    messages: list[ConsoleMessage] = []
    errors: list[Error] = []
    # playwright wants functions it may tag (a bound method like list.append is not one)
    page.on("console", lambda m: messages.append(m))  # noqa: PLW0108
    page.on("pageerror", lambda e: errors.append(e))  # noqa: PLW0108
    try:
        page.goto(url, wait_until="load", timeout=30_000)
        page.wait_for_timeout(300)  # late events, if any
        console = [{"type": m.type, "text": m.text, "args": [a.json_value() for a in m.args]} for m in messages
                   if not m.location.get("url", "").endswith("/favicon.ico")]  # fmt: skip  # its 404, when it comes
        return {"console": console, "errors": [f"{e.name}: {e.message}" for e in errors]}
    finally:
        page.close()


def browse(origin: str, node_ip: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    """``origin``/index.html?key=…&value=… for each query, with solarprotocol.net mapped to ``node_ip``."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP solarprotocol.net {node_ip}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            results = [visit(browser, f"{origin}/index.html?key={k}&value={v}") for k, v in queries]
            return {"version": f"Chromium {browser.version} (playwright)", "results": results}
        finally:
            browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description="the browser part of bench.v1_clients' check 3")
    p.add_argument("--browse", nargs=2, metavar=("ORIGIN", "NODE_IP"), required=True)
    p.add_argument("queries", nargs="+", metavar="KEY=VALUE")
    args = p.parse_args()
    origin, node_ip = args.browse
    queries = [(q.partition("=")[0], q.partition("=")[2]) for q in args.queries]
    json.dump(browse(origin, node_ip, queries), sys.stdout)


if __name__ == "__main__":
    main()
