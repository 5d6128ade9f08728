"""A trivial Bokeh-protocol server, used to measure the load generator's own ceiling.

It speaks just enough of the protocol for S1, S2, S3 and S7 and does almost no work per request:
the page is a canned HTML with a token in render_items, PULL-DOC is answered with the real
document of the app file (serialized once at start-up by bokeh itself, so sizes match), a slider
PATCH-DOC with a canned 200-point ColumnDataChanged patch plus OK, apps whose name contains
"stream" push a canned 10-point ColumnsStreamed patch every 100 ms, and /static/js/*.js is served
from memory (gzip-compressed once when the client accepts it). Started like a server:

    python -m bench.ceiling serve bench/apps/sliders.py ... --port N [other bokeh flags ignored]

and prints the same "Bokeh app running at:" line, so the benchmark driver treats it as a slot.
Whatever rate the harness reaches against it is the most it can measure on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import itertools
import json
import os
import sys
import warnings
from dataclasses import dataclass

from bench.loadgen.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameDecoder, encode_frame
from bench.loadgen.http import set_nodelay
from bench.loadgen.messages import MessageAssembler

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ids = itertools.count(1)
_TOKEN = (
    base64.urlsafe_b64encode(json.dumps({"session_id": "x" * 44, "session_expiry": 4102444800}).encode())
    .decode()
    .rstrip("=")
)


def _frame(text: str | bytes, op: int = OP_TEXT) -> bytes:
    return encode_frame(op, text.encode() if isinstance(text, str) else text, mask=False)


@dataclass
class App:
    name: str
    page: bytes
    pull_tail: bytes  # metadata + content + buffer frames of the PULL-DOC-REPLY
    pull_nbuf: int
    patch: bytes  # a complete PATCH-DOC message (ColumnDataChanged, 2 x 200 float64)
    stream_patch: bytes | None


def _page(name: str) -> bytes:
    pad = "<!-- padding to a typical page size -->\n" * 60
    body = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{name}</title>'
        '<script type="text/javascript" src="/static/js/bokeh.min.js?v=0"></script></head><body>'
        f"{pad}"
        '<script type="text/javascript">const render_items=[{"token":"' + _TOKEN + '","roots":{},'
        '"root_ids":[],"use_for_title":true}];</script></body></html>'
    ).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return head + body


def _build_app(path: str) -> App:
    from bokeh.application.handlers.script import ScriptHandler
    from bokeh.document import Document
    from bokeh.protocol import Protocol

    doc = Document()
    ScriptHandler(filename=path).modify_document(doc)
    msg = Protocol().create("PULL-DOC-REPLY", "REQ", doc)
    tail = _frame(msg.metadata_json) + _frame(msg.content_json)
    for buf in msg.buffers:
        tail += _frame(json.dumps(buf.ref)) + _frame(buf.to_bytes(), OP_BINARY)
    col = {"type": "ndarray", "shape": [200], "dtype": "float64", "order": "little"}
    data = {
        "type": "map",
        "entries": [[k, {**col, "array": {"type": "bytes", "data": {"id": f"b{k}"}}}] for k in "xy"],
    }
    ev = {"kind": "ColumnDataChanged", "model": {"id": "p0"}, "attr": "data", "data": data, "cols": None}
    patch = _frame(json.dumps({"msgid": "c1", "msgtype": "PATCH-DOC", "num_buffers": 2})) + _frame("{}")
    patch += _frame(json.dumps({"events": [ev]}, separators=(",", ":")))
    for k in "xy":
        patch += _frame(json.dumps({"id": f"b{k}"})) + _frame(bytes(1600), OP_BINARY)
    stream_patch = None
    name = os.path.splitext(os.path.basename(path))[0]
    if "stream" in name:
        sev = {
            "kind": "ColumnsStreamed", "model": {"id": "p0"}, "attr": "data", "rollover": 1000,
            "data": {"type": "map", "entries": [["x", list(range(10))], ["y", [0.5] * 10]]},
        }  # fmt: skip
        stream_patch = _frame(json.dumps({"msgid": "c2", "msgtype": "PATCH-DOC", "num_buffers": 0}))
        stream_patch += _frame("{}") + _frame(json.dumps({"events": [sev]}, separators=(",", ":")))
    return App(name, _page(name), tail, len(msg.buffers), patch, stream_patch)


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    import bokeh.util.paths as bp

    root = os.path.join(str(bp.bokehjs_path()), "js")
    out = {}
    for fn in os.listdir(root):
        if fn.endswith(".min.js"):
            with open(os.path.join(root, fn), "rb") as f:
                data = f.read()
            out[f"/static/js/{fn}"] = (data, gzip.compress(data, 6))
    return out


class CeilingServer:
    def __init__(self, apps: dict[str, App]) -> None:
        self.apps = apps
        self.static = _static_files()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        set_nodelay(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                hdrs = {
                    k.strip().lower(): v.strip()
                    for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
                }
                if hdrs.get("upgrade", "").lower() == "websocket":
                    await self._websocket(path, hdrs, reader, writer)
                    return
                writer.write(self._http(path.split("?")[0], hdrs))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _http(self, path: str, hdrs: dict[str, str]) -> bytes:
        app = self.apps.get(path.rstrip("/").lstrip("/"))
        if app is not None:
            return app.page
        if path in self.static:
            plain, gz = self.static[path]
            use_gz = "gzip" in hdrs.get("accept-encoding", "")
            body = gz if use_gz else plain
            enc = "Content-Encoding: gzip\r\n" if use_gz else ""
            return (
                f"HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\n{enc}Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    async def _websocket(
        self, path: str, hdrs: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        app = self.apps[path.split("?")[0].rsplit("/ws", 1)[0].lstrip("/")]
        accept = base64.b64encode(hashlib.sha1(hdrs["sec-websocket-key"].encode() + _GUID).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: bokeh\r\n\r\n".encode()
            + _frame(json.dumps({"msgid": f"p{next(_ids)}", "msgtype": "ACK"}))
            + _frame("{}")
            + _frame("{}")
        )
        dec, asm = FrameDecoder(), MessageAssembler()
        streamer: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()

        def push() -> None:
            nonlocal streamer
            if not writer.is_closing() and app.stream_patch is not None:
                writer.write(app.stream_patch)
                streamer = loop.call_later(0.1, push)

        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    return
                for m in dec.feed(data):
                    if m.opcode == OP_CLOSE:
                        writer.write(encode_frame(OP_CLOSE, m.payload[:2], mask=False))
                        return
                    if m.opcode == OP_PING:
                        writer.write(encode_frame(OP_PONG, m.payload, mask=False))
                        continue
                    if m.opcode not in (OP_TEXT, OP_BINARY):
                        continue
                    msg = asm.feed(m)
                    if msg is None:
                        continue
                    reqid = msg.header["msgid"]
                    if msg.msgtype == "PULL-DOC-REQ":
                        hdr = {"msgid": f"p{next(_ids)}", "msgtype": "PULL-DOC-REPLY", "reqid": reqid,
                               "num_buffers": app.pull_nbuf}  # fmt: skip
                        writer.write(_frame(json.dumps(hdr)) + app.pull_tail)
                        if app.stream_patch is not None and streamer is None:
                            streamer = loop.call_later(0.1, push)
                        continue
                    out = (
                        app.patch
                        if msg.msgtype == "PATCH-DOC" and '"ModelChanged"' in msg.content_text
                        else b""
                    )
                    ok = {"msgid": f"p{next(_ids)}", "msgtype": "OK", "reqid": reqid}
                    writer.write(out + _frame(json.dumps(ok)) + _frame("{}") + _frame("{}"))
        finally:
            if streamer is not None:
                streamer.cancel()


async def _serve(args: argparse.Namespace) -> None:
    apps = {}
    for path in args.files:
        app = _build_app(path)
        apps[app.name] = app
    server = CeilingServer(apps)
    srv = await asyncio.start_server(server.handle, args.address or "127.0.0.1", args.port, backlog=1024)
    for name in apps:
        print(f"Bokeh app running at: http://localhost:{args.port}/{name}", file=sys.stderr, flush=True)
    async with srv:
        await srv.serve_forever()


def main(argv: list[str] | None = None) -> None:
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser(prog="python -m bench.ceiling")
    p.add_argument("command", choices=["serve"])
    p.add_argument("files", nargs="+")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--address", default="127.0.0.1")
    args, _ignored = p.parse_known_args(argv)
    args.files = [f for f in args.files if f.endswith(".py")]
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
